import numpy as np
import torch

from workbench.shapesworld.models.classifier import HEADS, ShapesClassifier
from workbench.shapesworld.training.classifier import ClassifierTrainingConfig, augment, draw_examples, train_classifier


def test_examples_carry_the_labels_of_the_masked_object():
    images, masks, labels = draw_examples(np.random.default_rng(0), 16)
    assert images.shape == (16, 3, 32, 32) and masks.shape == (16, 32, 32)
    for name in HEADS:
        assert labels[name].shape == (16,) and labels[name].max() < len(HEADS[name])
    for image, mask, color in zip(images, masks, labels["color"]):
        if mask.mean() < 1:  # an object mask, not the whole image
            pixels = (image.permute(1, 2, 0)[mask.bool()] * 255).round()
            from workbench.shapesworld import COLORS

            assert (pixels == torch.tensor(list(COLORS.values())[color], dtype=torch.float)).all()


def test_augment_keeps_range_and_shapes():
    images, masks, _ = draw_examples(np.random.default_rng(1), 8)
    out_images, out_masks = augment(images, masks, torch.Generator().manual_seed(0))
    assert out_images.shape == images.shape and out_masks.shape == masks.shape
    assert out_images.min() >= 0 and out_images.max() <= 1
    assert set(out_masks.unique().tolist()) <= {0.0, 1.0}


def test_a_short_run_saves_a_loadable_model(tmp_path):
    model = train_classifier(tmp_path / "clf", ClassifierTrainingConfig(steps=30, batch_size=32))
    loaded = ShapesClassifier.from_pretrained(tmp_path / "clf")
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(model(x).logits["color"], loaded(x).logits["color"])
