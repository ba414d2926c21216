"""Generation options: each pipeline's own defaults, and options it does not take refused."""

import pytest

from workbench.analyses.generation import generation_options
from workbench.pipelines.random_pipelines import build_random_pipeline


def test_guidance_defaults_to_each_pipelines_own(tmp_path, tiny_shapes):
    from workbench.shapesworld.models.pipeline import DEFAULT_GUIDANCE_SCALE

    assert generation_options(build_random_pipeline("sd15", tmp_path / "sd"))["guidance_scale"] == 7.5
    assert generation_options(build_random_pipeline("sdxl", tmp_path / "xl"))["guidance_scale"] == 5.0
    assert generation_options(tiny_shapes) == {"guidance_scale": DEFAULT_GUIDANCE_SCALE}
    assert generation_options(tiny_shapes, guidance_scale=3.0, height=None) == {"guidance_scale": 3.0}  # unset options dropped


def test_options_the_pipeline_does_not_take_are_refused_by_name(tiny_shapes):
    with pytest.raises(ValueError, match="ShapesPipeline does not take negative_prompt, height; leave them unset"):
        generation_options(tiny_shapes, negative_prompt="blurry", height=64)
