import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from workbench import PipelineLoadError, load_pipeline
from workbench.shapesworld.models import ShapesPipeline


def test_embedded_model_loads_offline_and_draws():
    pipe = load_pipeline("shapes")
    assert isinstance(pipe, ShapesPipeline)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(["a large red circle on a gray background"] * 2, num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (2, 32, 32, 3)


def test_saved_shapes_pipeline_loads_from_its_folder(tiny_shapes, tmp_path):
    tiny_shapes.save_pretrained(tmp_path)
    assert isinstance(load_pipeline(tmp_path), ShapesPipeline)


def test_stable_diffusion_folder_loads_through_the_same_function(tiny_sd_dir):
    pipe = load_pipeline(tiny_sd_dir)
    assert isinstance(pipe, StableDiffusionPipeline)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(["a red circle", "a blue square"], num_inference_steps=2, height=64, width=64, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (2, 64, 64, 3)
    again = pipe(["a red circle", "a blue square"], num_inference_steps=2, height=64, width=64, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert np.array_equal(images, again)


def test_unknown_name_says_what_was_expected():
    with pytest.raises(PipelineLoadError, match="neither an embedded model \\(shapes, shapes-transformer\\) nor an existing folder"):
        load_pipeline("stable-diffusion-v1-5")


def test_folder_without_model_index_is_refused(tmp_path):
    with pytest.raises(PipelineLoadError, match="no model_index.json"):
        load_pipeline(tmp_path)


def test_broken_model_index_is_refused(tmp_path):
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(PipelineLoadError, match="not a valid pipeline index"):
        load_pipeline(tmp_path)


def test_missing_components_are_reported(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "ShapesPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}))
    with pytest.raises(PipelineLoadError, match="could not load the ShapesPipeline"):
        load_pipeline(tmp_path)


def test_missing_embedded_data_names_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    with pytest.raises(PipelineLoadError, match="embedded model folder .* is missing"):
        load_pipeline("shapes")


def test_embedded_worlds_are_found_through_their_entry_point(tiny_shapes, tiny_sd_dir):
    from workbench.worlds import embedded_worlds, pipeline_class, world_of, world_with_pipeline

    (world,) = embedded_worlds()
    assert world.name == "ShapesWorld" and world_with_pipeline("shapes") is world and world_with_pipeline("sd") is None
    assert world_of(tiny_shapes) is world and world_of(load_pipeline(tiny_sd_dir)) is None
    assert pipeline_class("ShapesPipeline") is ShapesPipeline and pipeline_class("StableDiffusionPipeline") is None
    assert world.token_kind("red") == "color" and world.token_kind("striped") == "background" and world.token_kind("a") == "other"


def test_the_shapesworld_transformer_saves_loads_and_belongs_to_its_world(tmp_path):
    from workbench.shapesworld.models import ShapesTransformerPipeline
    from workbench.worlds import world_of

    from ..shapes_fixtures import tiny_shapes_transformer

    pipe = tiny_shapes_transformer()
    pipe.save_pretrained(tmp_path)
    loaded = load_pipeline(tmp_path)
    assert isinstance(loaded, ShapesTransformerPipeline) and world_of(loaded).name == "ShapesWorld"
    loaded.set_progress_bar_config(disable=True)
    run = lambda p: p(["a small blue square on a white background"], num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np").images  # noqa: E731
    assert np.array_equal(run(pipe), run(loaded))
