import numpy as np

from workbench.shapesworld import COLORS, sample_scenes
from workbench.shapesworld.segmentation import BACKGROUND_LABEL, color_regions, segment_by_palette


def test_segmentation_recovers_the_exact_masks_of_rendered_scenes():
    for scene in sample_scenes(100, seed=11):
        labels = segment_by_palette(scene.image)
        assert np.array_equal(labels == BACKGROUND_LABEL, scene.background_mask)
        for obj, mask in zip(scene.objects, scene.object_masks):
            assert (labels[mask] == list(COLORS).index(obj.color)).all()


def test_segmentation_tolerates_noise_and_float_images():
    scene = sample_scenes(1, seed=0, n_objects=1)[0]
    noisy = np.clip(scene.image / 255 + np.random.default_rng(0).normal(0, 0.03, scene.image.shape), 0, 1)
    labels = segment_by_palette(noisy)
    agreement = (labels[scene.object_masks[0]] == list(COLORS).index(scene.objects[0].color)).mean()
    assert agreement > 0.95


def test_same_colour_objects_split_into_blobs():
    scene = next(s for s in sample_scenes(500, seed=4, n_objects=2) if s.objects[0].color == s.objects[1].color)
    regions = color_regions(segment_by_palette(scene.image), scene.objects[0].color, 2)
    assert sorted(r.sum() for r in regions) == sorted(m.sum() for m in scene.object_masks)
