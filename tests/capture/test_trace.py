import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from diffusers.models.attention_processor import AttnProcessor

from workbench.capture import AttentionMaps, CaptureMemoryError, LayerSelectionError, WordNotFoundError, trace
from workbench.capture.processor import CaptureProcessor, spatial_shape
from workbench.capture.architectures import AttentionLayer
from workbench.pipelines.loading import load_pipeline

PROMPTS = ["a large red circle on a gray background", "a small blue square and a large yellow cross on a striped background"]


def run(pipe, prompts=PROMPTS, steps=3, **kwargs):
    return pipe(prompts, generator=torch.Generator().manual_seed(0), num_inference_steps=steps, output_type="np", **kwargs).images


@pytest.fixture(scope="module")
def sd(tiny_sd_dir):
    pipe = load_pipeline(tiny_sd_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sd_run(pipe, **kwargs):
    return run(pipe, ["a red cat", "a blue dog"], steps=2, height=64, width=64, **kwargs)


def test_traced_generation_is_bit_identical_and_processors_come_back(tiny_shapes):
    before = dict(tiny_shapes.unet.attn_processors)
    reference = run(tiny_shapes)
    with trace(tiny_shapes, self_layers="all", heads="keep") as tr:
        traced = run(tiny_shapes)
    assert np.array_equal(reference, traced)
    assert tiny_shapes.unet.attn_processors == before
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in tiny_shapes.unet.modules())
    assert tr.attention_maps().maps


def test_stable_diffusion_trace_is_bit_identical_with_character_tokens(sd):
    reference = sd_run(sd)
    with trace(sd) as tr:
        traced = sd_run(sd)
    assert np.array_equal(reference, traced)
    maps = tr.attention_maps()
    assert maps.image_size == (64, 64)
    assert maps.word_span("red", prompt=0).tokens == (2, 3, 4)  # r, e, d</w>
    assert maps.word("cat", prompt=0).shape == (64, 64)
    assert {layer.group for layer in maps.layers} == {"down.0", "down.1", "down.2", "mid", "up.1", "up.2", "up.3"}


def test_heat_maps_of_a_trace_without_cross_attention_are_refused(tiny_shapes):
    with trace(tiny_shapes, layers=None, self_layers="all") as tr:
        run(tiny_shapes, steps=1)
    with pytest.raises(ValueError, match="no cross-attention layers"):  # not a NaN map from an empty mean
        tr.attention_maps().word("red")


def test_processors_come_back_after_an_exception(tiny_shapes):
    before = dict(tiny_shapes.unet.attn_processors)
    with pytest.raises(ZeroDivisionError):
        with trace(tiny_shapes):
            run(tiny_shapes, steps=1)
            1 / 0
    assert tiny_shapes.unet.attn_processors == before


def test_probabilities_match_the_classic_processor():
    """Known answer: diffusers' classic AttnProcessor materialises softmax(QK^T scale)."""
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attn = Attention(query_dim=16, cross_attention_dim=8, heads=2, dim_head=8)
    hidden, context = torch.randn(3, 12, 16), torch.randn(3, 5, 8)
    q = attn.head_to_batch_dim(attn.to_q(hidden))
    k = attn.head_to_batch_dim(attn.to_k(context))
    expected = attn.get_attention_scores(q, k).view(3, 2, 12, 5)
    got = []
    wrapper = CaptureProcessor(AttnProcessor(), AttentionLayer("attn", "attn", "cross"), lambda batch: slice(0, batch), lambda layer, p: got.append(p))
    wrapper.hooks(attn)
    attn.set_processor(wrapper)
    attn(hidden, context)
    assert torch.allclose(got[0], expected, atol=1e-6)


def test_maps_are_distributions_over_tokens(tiny_shapes):
    with trace(tiny_shapes) as tr:
        run(tiny_shapes)
    for tensor in tr.attention_maps().maps.values():
        assert torch.allclose(tensor.sum(dim=1), torch.ones(()), atol=1e-5)


def test_layer_selection_by_short_name_and_path(tiny_shapes):
    with trace(tiny_shapes, layers=["down.1", "mid_block.attentions.0.transformer_blocks.0.attn2"]) as tr:
        run(tiny_shapes, steps=1)
    assert [layer.short for layer in tr.attention_maps().layers] == ["down.1.0", "mid.0"]
    with pytest.raises(LayerSelectionError, match="valid names are .*down.1.*up.1"):
        trace(tiny_shapes, layers="down.7").__enter__()


def test_guidance_halves_and_steps(tiny_shapes):
    with trace(tiny_shapes, guidance="cond") as cond:
        run(tiny_shapes, steps=3)
    with trace(tiny_shapes, guidance="uncond") as uncond:
        run(tiny_shapes, steps=3)
    a, b = cond.attention_maps(), uncond.attention_maps()
    assert b.tokens.texts == ["", ""] and not b.tokens.words[0]  # no negative prompt: no words
    assert not torch.allclose(a.token(3), b.token(3))
    with trace(tiny_shapes, steps=range(1, 3)) as some:
        run(tiny_shapes, steps=3)
    assert some.attention_maps().steps == [1, 2]
    with pytest.raises(ValueError, match="without batched classifier-free guidance"):
        with trace(tiny_shapes, guidance="uncond"):
            run(tiny_shapes, steps=1, guidance_scale=1.0)


def test_per_step_storage_averages_to_the_streaming_store(tiny_shapes):
    with trace(tiny_shapes) as streaming:
        run(tiny_shapes, steps=4)
    with trace(tiny_shapes, per_step=True, heads="keep") as kept:
        run(tiny_shapes, steps=4)
    s, k = streaming.attention_maps(), kept.attention_maps()
    assert k.dims == ("image", "step", "head", "token", "y", "x")
    for path, tensor in k.maps.items():
        assert tensor.shape[1] == 4
        assert torch.allclose(tensor.mean(dim=(1, 2)), s.maps[path], atol=1e-6)
    assert kept.estimated_bytes == sum(t.numel() * 4 for t in k.maps.values())


def test_store_size_does_not_grow_with_steps(tiny_shapes):
    sizes = []
    for steps in (2, 6):
        with trace(tiny_shapes) as tr:
            run(tiny_shapes, steps=steps)
        sizes.append(tr.store.nbytes)
    assert sizes[0] == sizes[1]


def test_per_step_storage_is_refused_before_it_outgrows_memory(tiny_shapes, monkeypatch):
    import workbench.capture.tracing as trace_module

    class Tiny:
        available = 1000

    monkeypatch.setattr(trace_module.psutil, "virtual_memory", lambda: Tiny())
    with pytest.raises(CaptureMemoryError, match="would take .* GiB for 5 steps"):
        with trace(tiny_shapes, per_step=True) as tr:
            run(tiny_shapes, steps=5)
    assert tr.step == 0  # refused when the second step began


def test_unknown_word_names_the_prompt_words(tiny_shapes):
    with trace(tiny_shapes) as tr:
        run(tiny_shapes, steps=1)
    with pytest.raises(WordNotFoundError, match="its words are: a large red circle on a gray background"):
        tr.attention_maps().word("green", prompt=0)


def test_pipeline_without_cross_attention_is_refused():
    pipe = DDPMPipeline(unet=UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D")), scheduler=DDPMScheduler())
    with pytest.raises(ValueError, match="DDPMPipeline: its denoiser is a UNet2DModel, which has no row yet; the workbench reads attention of UNet2DConditionModel, PixArtTransformer2DModel, SD3Transformer2DModel"):
        trace(pipe).__enter__()


def test_save_and_load_round_trip(tiny_shapes, tmp_path):
    with trace(tiny_shapes, heads="keep") as tr:
        run(tiny_shapes, steps=2)
    maps = tr.attention_maps()
    maps.save(tmp_path / "maps.safetensors")
    loaded = AttentionMaps.load(tmp_path / "maps.safetensors")
    assert loaded.dims == maps.dims and loaded.tokens.words == maps.tokens.words
    assert torch.equal(loaded.word("circle", prompt=0), maps.word("circle", prompt=0))
    frame = loaded.to_frame(words=["red"])
    assert set(frame.columns) == {"prompt", "layer", "group", "word", "occurrence", "y", "x", "value"}
    assert (frame.word == "red").all() and len(frame) > 0
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "maps.safetensors").read_bytes()[:100])
    with pytest.raises(ValueError, match="cut.safetensors: not a readable safetensors file"):
        AttentionMaps.load(tmp_path / "cut.safetensors")
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors does not exist"):
        AttentionMaps.load(tmp_path / "nowhere.safetensors")


def test_spatial_shape_handles_non_square_latents():
    assert spatial_shape((64, 96), 64 * 96 // 16) == (16, 24)
    with pytest.raises(ValueError, match="do not tile"):
        spatial_shape((64, 64), 1000)


@pytest.mark.parametrize("family", ["sd2", "sdxl"])
def test_other_stable_diffusion_families_trace_bit_identically(family, tmp_path):
    from workbench.pipelines.random_pipelines import save_random_pipeline

    pipe = load_pipeline(save_random_pipeline(family, tmp_path))
    pipe.set_progress_bar_config(disable=True)
    size = 64
    kwargs = dict(height=size, width=size)
    reference = run(pipe, ["a red cat", "a dog"], steps=2, **kwargs)
    with trace(pipe, self_layers="all") as tr:
        traced = run(pipe, ["a red cat", "a dog"], steps=2, **kwargs)
    assert np.array_equal(reference, traced)
    maps = tr.attention_maps()
    assert maps.word("cat", prompt=0).shape == (size, size)
    shorts = [layer.short for layer in maps.layers]
    if family == "sdxl":
        assert "down.1.0.t1" in shorts  # two transformer blocks per attention


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_traces_bit_identically_into_a_float32_store(dtype):
    from ..shapes_fixtures import tiny_shapes_pipeline

    pipe = tiny_shapes_pipeline().to(dtype=dtype)
    reference = run(pipe, steps=2)
    with trace(pipe) as tr:
        traced = run(pipe, steps=2)
    assert np.array_equal(reference, traced)
    maps = tr.attention_maps()
    assert all(t.dtype == torch.float32 for t in maps.maps.values())
    assert torch.isfinite(maps.word("red")).all()
