import numpy as np
import pytest
import torch

from workbench.world.scenes import Scene, SceneObject
from workbench.training.grounding import grounding_loss, grounding_targets

SCENE = Scene(
    (SceneObject("circle", "red", "small", 8.0, 8.0), SceneObject("square", "blue", "large", 22.0, 22.0)),
    "striped",
)


def test_each_object_word_is_grounded_on_its_own_object_and_the_background_word_on_the_background():
    caption = SCENE.caption  # a small red circle and a large blue square on a striped background
    masks, grounded = grounding_targets([SCENE, SCENE], [caption, ""], max_length=20)
    assert grounded[0].nonzero().flatten().tolist() == [2, 3, 4, 7, 8, 9, 12]
    assert not grounded[1].any()  # a dropped caption grounds nothing
    for token in (2, 3, 4):
        assert np.array_equal(masks[0, token].bool().numpy(), SCENE.object_masks[0])
    for token in (7, 8, 9):
        assert np.array_equal(masks[0, token].bool().numpy(), SCENE.object_masks[1])
    assert np.array_equal(masks[0, 12].bool().numpy(), SCENE.background_mask)


def test_grounding_loss_known_answers():
    masks = torch.zeros(1, 3, 4, 4)
    masks[0, 1, :2, :2] = 1  # token 1 belongs to the top-left quarter
    grounded = torch.tensor([[False, True, False]])
    inside = torch.zeros(1, 1, 16, 3)
    inside[..., 0] = 1.0
    inside[0, 0, [0, 1, 4, 5], 0] = 0.0
    inside[0, 0, [0, 1, 4, 5], 1] = 1.0  # only the quarter's pixels attend to token 1
    assert grounding_loss([inside], masks, grounded).item() == pytest.approx(0.0)
    uniform = torch.full((1, 2, 16, 3), 1 / 3)
    assert grounding_loss([uniform], masks, grounded).item() == pytest.approx(0.75**2)
    # at a coarser layer (2x2) the quarter is one query: the masks are area-averaged
    coarse = torch.full((1, 1, 4, 3), 1 / 3)
    assert grounding_loss([uniform, coarse], masks, grounded).item() == pytest.approx(0.75**2)
    assert grounding_loss([uniform], masks, torch.zeros_like(grounded)).item() == 0.0
