"""Concept analyses on transformer denoisers (SD3, Flux, PixArt, Sana, the ShapesWorld
transformer): the denoiser is called exactly as its pipeline calls it, flow-matching noise
levels and clean estimates have their known answers, and CAVs, gradients and TCAV run on
joint-attention blocks, reading their image stream."""

import numpy as np
import pytest
import torch

from workbench.concepts import ConceptSet, gradients_at, layer_activations, run_tcav, sets_from_pool
from workbench.concepts.pipeline_io import clean_estimate, encode_prompts, from_latents, noise_to, predict
from workbench.concepts.targets import TargetModel
from workbench.pipelines.random_pipelines import build_random_pipeline

from ..shapes_fixtures import tiny_shapes_transformer

BLOCK = {"sd3": "transformer.transformer_blocks.0", "flux": "transformer.transformer_blocks.0",
         "pixart": "transformer.transformer_blocks.0", "sana": "transformer.transformer_blocks.0"}


@pytest.fixture(scope="module", params=list(BLOCK))
def family(request, tmp_path_factory):
    pipe = build_random_pipeline(request.param, tmp_path_factory.mktemp(request.param), sample_size=None if request.param == "flux" else 8)
    pipe.set_progress_bar_config(disable=True)
    return request.param, pipe


def _first_call(pipe, **options) -> tuple[dict, torch.Tensor]:
    """The denoiser's keyword inputs and output at the first step of a plain generation."""
    seen = []

    def record(module, args, kwargs, output):
        if not seen:
            seen.append(({**dict(zip(("hidden_states",), args)), **kwargs}, output[0] if isinstance(output, tuple) else output.sample))

    handle = pipe.transformer.register_forward_hook(record, with_kwargs=True)
    try:
        pipe("a red cat", num_inference_steps=2, output_type="latent", generator=torch.Generator().manual_seed(0), **options)
    finally:
        handle.remove()
    return seen[0]


def test_the_denoiser_is_called_as_its_pipeline_calls_it(family):
    """Known answer: encode_prompts + predict on the latents and timestep of a real generation's
    first step give the output the pipeline's own call gave (Flux: unpacked; PixArt and Sana:
    the learned-variance half dropped, as their pipelines do)."""
    name, pipe = family
    size = {"flux": 64}.get(name)
    options = {"height": size, "width": size} if size else {}
    if name != "flux":
        options["guidance_scale"] = 1.0  # one conditional call, no guidance batch
    if name in ("pixart", "sana"):
        options["use_resolution_binning"] = False  # the tiny test sizes are in no bin
    kwargs, output = _first_call(pipe, **options)
    noisy, timestep = kwargs["hidden_states"], kwargs["timestep"]
    if name == "flux":
        factor = pipe.vae_scale_factor
        noisy = type(pipe)._unpack_latents(noisy, size, size, factor)
        output = type(pipe)._unpack_latents(output, size, size, factor)
        timestep = timestep * 1000
    if name == "sana":
        timestep = timestep / (pipe.transformer.config.get("timestep_scale") or 1.0)
    if output.shape[1] == 2 * noisy.shape[1]:
        output = output.chunk(2, dim=1)[0]
    with torch.no_grad():
        ours = predict(pipe, noisy, timestep, encode_prompts(pipe, ["a red cat"]))
    assert ours.shape == noisy.shape
    torch.testing.assert_close(ours, output, rtol=1e-5, atol=1e-5)


def test_flow_matching_noise_and_clean_estimate_known_answer(family):
    name, pipe = family
    clean, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    noisy, t = noise_to(pipe.scheduler, clean, noise, 300)
    if name == "pixart":  # DDPM-type: sqrt(a) x0 + sqrt(1 - a) noise
        a = pipe.scheduler.alphas_cumprod[300]
        torch.testing.assert_close(noisy, a.sqrt() * clean + (1 - a).sqrt() * noise)
        torch.testing.assert_close(clean_estimate(pipe.scheduler, noisy, noise, t), clean, rtol=1e-4, atol=1e-4)
        return
    torch.testing.assert_close(noisy, 0.7 * clean + 0.3 * noise)
    assert torch.equal(t, torch.full((2,), 300.0))
    velocity = noise - clean  # what a flow-matching model predicts
    torch.testing.assert_close(clean_estimate(pipe.scheduler, noisy, velocity, t), clean, rtol=1e-5, atol=1e-5)


def test_joint_blocks_are_read_on_their_image_stream_with_gradients(family):
    """A joint block returns (text, image): activations and gradients are the image tokens',
    which the image target depends on; the text encoder's gradients flow too."""
    name, pipe = family
    size = (64, 64) if name == "flux" else None
    prompts = ["a red cat", "a blue dog"]
    images = torch.rand(2, 3, *(size or (16 if name == "sana" else 64,) * 2)) * 2 - 1
    found = gradients_at(pipe, [BLOCK[name]], images, prompts, lambda x0: x0.mean((1, 2, 3)), timestep=500)
    activations, gradients = found[BLOCK[name]]
    width = pipe.transformer.config.num_attention_heads * pipe.transformer.config.attention_head_dim
    assert activations.shape == gradients.shape == (2, width)
    assert gradients.abs().sum() > 0
    again = layer_activations(pipe, [ConceptSet("c", prompts=tuple(prompts), images=images)], [BLOCK[name]], timestep=500)
    torch.testing.assert_close(again["c"][BLOCK[name]], activations, rtol=1e-4, atol=1e-5)


def test_target_model_names_the_transformer_and_computes_the_same_target(family):
    name, pipe = family
    model = TargetModel(pipe, lambda x0: x0.mean((2, 3)), pooled=[BLOCK[name]])
    assert model.get_submodule(BLOCK[name]) is pipe.transformer.transformer_blocks[0]
    side = {"flux": 64, "sana": 16}.get(name, 64)
    images = torch.rand(2, 3, side, side) * 2 - 1
    inputs = model.inputs(images, ["a red cat", "a dog"], timestep=400)
    assert len(inputs) == 3 + len(model.added)
    with torch.no_grad():
        out = model(*inputs)
        conditioning = encode_prompts(pipe, ["a red cat", "a dog"])
        prediction = predict(pipe, inputs[0], inputs[1], conditioning)
        direct = from_latents(pipe, clean_estimate(pipe.scheduler, inputs[0], prediction, inputs[1])).mean((2, 3))
    assert out.shape == (2, 3)
    torch.testing.assert_close(out, direct, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"only denoiser modules \('transformer.<path>'\)"):
        TargetModel(pipe, lambda x0: x0.mean((2, 3)), pooled=["text_encoder"])


def test_tcav_on_the_shapesworld_transformer_with_an_image_target():
    """The embedded world's transformer: TCAV at a joint block with its own image target, and
    its prompts encoded with the pooled state SD3-style pipelines take."""
    pipe = tiny_shapes_transformer()
    conditioning = encode_prompts(pipe, ["a red circle", "a blue square"])
    assert set(conditioning.added) == {"pooled_projections"}
    layer = "transformer.transformer_blocks.1"
    reds = ConceptSet("red", prompts=tuple(f"a {s} red {shape}" for s in ("small", "large") for shape in ("circle", "square", "cross")))
    pool = ConceptSet("pool", prompts=tuple(f"a {s} {c} {shape}" for s in ("small", "large") for c in ("blue", "green", "yellow")
                                             for shape in ("circle", "square")))
    inputs = ConceptSet("inputs", prompts=("a red circle", "a blue square", "a green cross"))
    redness = lambda images: images[:, 0].mean((1, 2)) - images[:, 2].mean((1, 2))  # noqa: E731
    report = run_tcav(pipe, redness, inputs, [reds], sets_from_pool(pool, 3, 6, seed=0), [layer], timestep=500)
    frame = report.to_frame()
    assert list(frame.layer) == [layer] and frame.score.between(0, 1).all()
    assert np.isfinite(report.results[0].cavs).all()


def test_a_trace_records_a_joint_blocks_image_tokens(tmp_path):
    from workbench.capture import trace

    pipe = build_random_pipeline("sd3", tmp_path, sample_size=8)
    pipe.set_progress_bar_config(disable=True)
    last = f"transformer.transformer_blocks.{len(pipe.transformer.transformer_blocks) - 1}"  # returns (None, image)
    with trace(pipe, modules=["transformer.transformer_blocks.0", last], pool="none") as tr:
        pipe("a red cat", num_inference_steps=2, guidance_scale=1.0, output_type="latent")
    image_tokens = (8 // pipe.transformer.config.patch_size) ** 2
    for name in ("transformer.transformer_blocks.0", last):
        assert tr.activations().values[name].shape[-2] == image_tokens
