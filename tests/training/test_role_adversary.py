import pytest
import torch

from workbench.training.checkpoint import load_state
from workbench.training.role_adversary import RoleAdversary, reverse_gradient
from workbench.world import sample_scenes


def test_reversed_gradient_is_negated_and_scaled():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w = torch.tensor([0.5, 2.0, -1.0])
    y = reverse_gradient(x, 0.3)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.3 * w)


def test_probes_learn_to_read_what_the_encoder_is_pushed_to_hide():
    torch.manual_seed(0)
    scenes = sample_scenes(64, seed=5, n_objects=(1,))
    adversary = RoleAdversary(width=8)
    words = torch.randn(64, 3, 8, requires_grad=True)
    loss = adversary.loss(words, scenes, scale=2.0)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    # the words' gradient is the probes' loss gradient reversed: a step along it raises the loss
    with torch.no_grad():
        raised = adversary.loss(words - 0.1 * words.grad, scenes, 2.0)
    assert raised > loss
    # the probes themselves get the ordinary gradient: a step along it lowers the loss
    with torch.no_grad():
        for p in adversary.parameters():
            p -= 0.1 * p.grad
        assert adversary.loss(words, scenes, 2.0) < loss
    with pytest.raises(ValueError, match="auxiliary"):
        adversary.loss(torch.randn(4, 1, 8), scenes[:4], 1.0)
