import numpy as np
import pytest

from workbench.shapesworld.models.classifier import ShapesClassifier
from workbench.shapesworld.models.judge import judge_images
from workbench.shapesworld.data import embedded_path
from workbench.shapesworld import COLORS, sample_scenes


@pytest.fixture(scope="module")
def judged():
    scenes = sample_scenes(64, seed=21, split="test")
    images = np.stack([s.image for s in scenes]).astype(np.float32) / 255
    return scenes, images, ShapesClassifier.from_pretrained(embedded_path("shapes-classifier"))


def test_true_renderings_score_perfectly(judged):
    scenes, images, classifier = judged
    report, frame = judge_images(images, [s.caption for s in scenes], classifier)
    assert report.color_accuracy == 1.0
    assert report.shape_accuracy >= 0.97
    assert report.background_accuracy == 1.0
    assert report.binding_accuracy >= 0.95
    assert report.n_images == 64 and report.n_objects == len(frame)


def test_a_wrong_colour_is_caught(judged):
    scenes, images, classifier = judged
    one = next(i for i, s in enumerate(scenes) if len(s.objects) == 1)
    scene = scenes[one]
    wrong = next(c for c in COLORS if c != scene.objects[0].color)
    caption = scene.caption.replace(f" {scene.objects[0].color} ", f" {wrong} ")
    report, frame = judge_images(images[one : one + 1], [caption], classifier)
    assert report.color_accuracy == 0.0 and report.shape_accuracy == 0.0


def test_blank_images_fail_everything_but_nothing_crashes(judged):
    scenes, images, classifier = judged
    blank = np.full_like(images[:4], 0.5)
    report, _ = judge_images(blank, [s.caption for s in scenes[:4]], classifier)
    assert report.color_accuracy == 0.0 and report.shape_accuracy == 0.0


def test_counts_must_match(judged):
    scenes, images, classifier = judged
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        judge_images(images[:2], [scenes[0].caption], classifier)
