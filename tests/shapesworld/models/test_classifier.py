import numpy as np
import pytest
import torch

from workbench.shapesworld.models.classifier import ShapesClassifier
from workbench.shapesworld.data import embedded_path
from workbench.shapesworld import sample_scenes


@pytest.fixture(scope="module")
def classifier():
    return ShapesClassifier.from_pretrained(embedded_path("shapes-classifier"))


def test_shipped_classifier_reads_rendered_scenes(classifier):
    scenes = sample_scenes(200, seed=99)
    images = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float() / 255
    masks = torch.from_numpy(np.stack([s.object_masks[0] for s in scenes])).float()
    with torch.no_grad():
        predicted = classifier(images, masks).predictions(classifier.heads)
    for head in ("color", "shape", "background"):
        truth = [getattr(s.objects[0], head) if head != "background" else s.background for s in scenes]
        accuracy = np.mean([p == t for p, t in zip(predicted[head], truth)])
        assert accuracy >= 0.97, head


def test_save_load_round_trip(tmp_path):
    model = ShapesClassifier().eval()
    model.save_pretrained(tmp_path)
    loaded = ShapesClassifier.from_pretrained(tmp_path)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(model(x).logits["shape"], loaded(x).logits["shape"])


def test_missing_file_and_bad_shape_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        ShapesClassifier.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"\(batch, 3, 32, 32\)"):
        ShapesClassifier()(torch.rand(2, 32, 32, 3))


@pytest.mark.parametrize("model, folder", [("ShapesClassifier", "shapes-classifier"), ("WordEncoder", "shapes-encoder")])
def test_damaged_model_folders_are_named(tmp_path, model, folder):
    import shutil

    from workbench.shapesworld import models
    from workbench.shapesworld.data import embedded_path

    copy = tmp_path / folder
    shutil.copytree(embedded_path(folder), copy)
    load = getattr(models, model).from_pretrained
    (copy / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ValueError, match=f"{folder}/model.safetensors: not a readable safetensors file"):
        load(copy)
    (copy / "config.json").write_text("{")
    with pytest.raises(ValueError, match=f"{folder}/config.json is not a {model} config"):
        load(copy)
    (copy / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        load(copy)
