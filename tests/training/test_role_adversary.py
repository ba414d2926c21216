import math

import pytest
import torch

from workbench.training.role_adversary import RoleAdversary
from workbench.world import sample_scenes
from workbench.world.vocabulary import FACTOR_VALUES


def test_probe_loss_trains_the_probes_and_confusion_the_words_only():
    torch.manual_seed(0)
    scenes = sample_scenes(64, seed=5, n_objects=(1,))
    adversary = RoleAdversary(width=8)
    words = torch.randn(64, 3, 8, requires_grad=True)
    probe, confusion = adversary.losses(words, scenes)
    probe_grads = torch.autograd.grad(probe, [words, *adversary.parameters()], allow_unused=True, retain_graph=True)
    assert probe_grads[0] is None and all(g is not None for g in probe_grads[1:])
    confusion_grads = torch.autograd.grad(confusion, [words, *adversary.parameters()], allow_unused=True)
    assert confusion_grads[0] is not None and all(g is None for g in confusion_grads[1:])
    # a step along -gradient of the confusion moves the probes' predictions towards uniform
    with torch.no_grad():
        _, lower = adversary.losses(words - 0.5 * confusion_grads[0], scenes)
    assert lower < confusion


def test_confusion_is_smallest_for_uniform_predictions():
    adversary = RoleAdversary(width=4)
    with torch.no_grad():
        for head in adversary.heads.values():
            head.weight.zero_()
            head.bias.zero_()
    scenes = sample_scenes(8, seed=1, n_objects=(1,))
    probe, confusion = adversary.losses(torch.randn(8, 3, 4), scenes)
    # uniform predictions: each factor's cross-entropy is log(classes), and so is its confusion
    expected = sum(math.log(len(FACTOR_VALUES[f])) for f in ("shape", "color", "size", "background")) / 4
    assert probe.item() == pytest.approx(expected) and confusion.item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="auxiliary"):
        adversary.losses(torch.randn(4, 1, 4), scenes[:4])
