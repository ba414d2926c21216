import numpy as np
import pytest
import torch

from workbench.shapesworld.models.pipeline import ShapesPipeline

CAPTIONS = ["a small red circle on a gray background", "a large blue square and a small green cross on a striped background"]


def generate(pipe, captions=CAPTIONS, seed=0, **kwargs):
    return pipe(captions, generator=torch.Generator().manual_seed(seed), num_inference_steps=3, output_type="np", **kwargs).images


def test_same_seed_same_images_other_seed_other_images(tiny_shapes):
    a, b, c = generate(tiny_shapes), generate(tiny_shapes), generate(tiny_shapes, seed=1)
    assert a.shape == (2, 32, 32, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0


def test_prompts_of_a_batch_do_not_mix(tiny_shapes):
    """Same seed, same noise: changing prompt 1 of a batch changes image 1 and leaves image 0."""
    a = generate(tiny_shapes, [CAPTIONS[0], CAPTIONS[1]])
    b = generate(tiny_shapes, [CAPTIONS[0], CAPTIONS[0]])
    assert np.allclose(a[0], b[0], atol=1e-6)
    assert not np.allclose(a[1], b[1], atol=1e-3)


def test_save_and_load_round_trip_gives_identical_images(tiny_shapes, tmp_path):
    tiny_shapes.save_pretrained(tmp_path)
    loaded = ShapesPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert np.array_equal(generate(tiny_shapes), generate(loaded))


def test_guidance_changes_the_images(tiny_shapes):
    assert not np.array_equal(generate(tiny_shapes, guidance_scale=1.0), generate(tiny_shapes, guidance_scale=5.0))


def test_output_types(tiny_shapes):
    g = torch.Generator().manual_seed(0)
    pil = tiny_shapes(CAPTIONS[0], generator=g, num_inference_steps=2).images
    assert pil[0].size == (32, 32)
    pt = tiny_shapes(CAPTIONS[0], num_inference_steps=2, output_type="pt").images
    assert pt.shape == (1, 3, 32, 32)


@pytest.mark.parametrize("kwargs, fragment", [({"prompt": []}, "non-empty"), ({"prompt": "a", "num_inference_steps": 0}, "num_inference_steps"), ({"prompt": "a", "output_type": "latent"}, "output_type")])
def test_bad_arguments_are_named(tiny_shapes, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        tiny_shapes(**kwargs)
