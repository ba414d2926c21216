import math

import pytest
import torch

from workbench.training.binding import MIN_TIMESTEP, binding_loss, binding_pairs, swapped_caption

TWO = "a large red circle and a small blue square on a gray background"


def test_swapped_caption_exchanges_the_two_shapes_only():
    assert swapped_caption(TWO) == "a large red square and a small blue circle on a gray background"
    assert swapped_caption(swapped_caption(TWO)) == TWO


@pytest.mark.parametrize("caption", [
    "",  # dropped caption
    "a large red circle on a gray background",  # one object
    "a large red circle and a small blue circle on a gray background",  # one shape
    "a large red circle and a small red square on a gray background",  # one colour
])
def test_no_swapped_caption_where_swapping_changes_nothing(caption):
    assert swapped_caption(caption) is None


def test_binding_loss_known_answers():
    noise = torch.zeros(2, 3, 4, 4)
    true = torch.full_like(noise, 0.1)  # error 0.01
    swapped = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.2)])  # errors 0.01, 0.04
    # sample 0: softplus(0) = log 2; sample 1: softplus((0.01 - 0.04) / (0.5 * 0.01)) = softplus(-6)
    expected = (math.log(2) + math.log1p(math.exp(-6))) / 2
    assert binding_loss(true, swapped, noise, temperature=0.5).item() == pytest.approx(expected, rel=1e-5)


def test_binding_loss_trains_the_true_error_down_and_the_swapped_error_up():
    noise = torch.zeros(1, 3, 2, 2)
    true = torch.full_like(noise, 0.1).requires_grad_()
    swapped = torch.full_like(noise, 0.1).requires_grad_()
    binding_loss(true, swapped, noise, temperature=0.1).backward()
    assert (true.grad > 0).all() and (swapped.grad < 0).all()  # a step moves true to 0, swapped away
    with pytest.raises(ValueError, match="temperature must be > 0"):
        binding_loss(true, swapped, noise, temperature=0.0)


def test_binding_pairs_keep_swappable_captions_at_noisy_steps():
    captions = [TWO, "a large red circle on a gray background", TWO, ""]
    chosen, swapped = binding_pairs(captions, torch.tensor([MIN_TIMESTEP, 900, MIN_TIMESTEP - 1, 900]))
    assert chosen.tolist() == [0] and swapped == [swapped_caption(TWO)]
