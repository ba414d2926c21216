import itertools

import numpy as np
import pytest
import torch

from workbench.shapesworld import COLORS, SHAPES, is_held_out, sample_scenes, scenes_frame
from workbench.shapesworld.render import background_image, shape_mask
from workbench.shapesworld.scenes import images_to_tensor


@pytest.fixture(scope="module")
def scenes():
    return sample_scenes(300, seed=3)


def test_masks_cover_exactly_the_drawn_pixels(scenes):
    for scene in scenes:
        image = scene.image.astype(int)
        saturation = image.max(-1) - image.min(-1)
        drawn = saturation > 0  # backgrounds are grey, objects saturated
        assert np.array_equal(drawn, scene.object_masks.any(0))
        for obj, mask in zip(scene.objects, scene.object_masks):
            assert mask.any()
            assert (image[mask] == COLORS[obj.color]).all()
        assert np.array_equal(scene.background_mask, ~scene.object_masks.any(0))


def test_objects_are_disjoint_and_inside_the_image(scenes):
    for scene in scenes:
        if len(scene.objects) == 2:
            assert not (scene.object_masks[0] & scene.object_masks[1]).any()
        for obj in scene.objects:
            assert obj.radius <= obj.x <= scene.image_size - obj.radius
            assert obj.radius <= obj.y <= scene.image_size - obj.radius


def test_two_large_objects_always_fit():
    scenes = sample_scenes(200, seed=1, n_objects=2)
    large_pairs = [s for s in scenes if all(o.size == "large" for o in s.objects)]
    assert large_pairs, "the sample should contain two-large-object scenes"


def test_same_seed_same_scenes_other_seed_other_scenes():
    a, b, c = sample_scenes(20, seed=7), sample_scenes(20, seed=7), sample_scenes(20, seed=8)
    assert a == b
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert a != c


def test_split_holds_out_combinations_but_keeps_every_color_shape_pair_in_training():
    train = sample_scenes(400, seed=0, split="train", n_objects=1)
    test = sample_scenes(100, seed=0, split="test", n_objects=1)
    assert not any(s.held_out for s in train)
    assert all(s.held_out for s in test)
    train_keys = {s.caption for s in train}
    assert not train_keys & {s.caption for s in test}
    seen_pairs = {(o.color, o.shape) for s in train for o in s.objects}
    assert seen_pairs == set(itertools.product(COLORS, SHAPES))


def test_hold_out_is_order_free():
    scene = next(s for s in sample_scenes(50, seed=2, n_objects=2))
    swapped = type(scene)(scene.objects[::-1], scene.background)
    assert is_held_out(scene.factors) == is_held_out(swapped.factors)


def test_factor_table_has_a_row_per_object(scenes):
    frame = scenes_frame(scenes[:10])
    assert len(frame) == sum(len(s.objects) for s in scenes[:10])
    assert {"scene", "object", "shape", "color", "size", "x", "y", "background", "caption"} <= set(frame.columns)


def test_striped_background_has_two_levels_in_bands():
    image = background_image("striped", 32)
    assert len(np.unique(image)) == 2
    assert (image[0] == image[1]).all() and not (image[0] == image[2]).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_stay_inside_their_bounding_circle(shape):
    mask = shape_mask(shape, 16.0, 16.0, 8.0, 32)
    ys, xs = np.nonzero(mask)
    assert np.hypot(xs + 0.5 - 16, ys + 0.5 - 16).max() <= 8.0 + 1e-9


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="split"):
        sample_scenes(1, split="validation")
    with pytest.raises(ValueError, match="n_objects"):
        sample_scenes(1, n_objects=3)
    with pytest.raises(ValueError, match="unknown shape 'hexagon'"):
        shape_mask("hexagon", 1, 1, 1, 32)


def test_images_to_tensor_known_answer():
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[0, 1] = (255, 0, 51)
    tensor = images_to_tensor([image, image])
    assert tensor.shape == (2, 3, 2, 3) and tensor.dtype == torch.float32
    assert torch.allclose(tensor[1, :, 0, 1], torch.tensor([1.0, -1.0, 51 / 127.5 - 1]))
    assert (tensor[0, :, 1] == -1).all()
