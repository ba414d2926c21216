"""trace on Flux's architecture (random weights): double-stream joint attention and single-stream
blocks over [text; image], rotary positions inside the processor, packed latents, T5 words."""

import numpy as np
import pytest
import torch

from workbench import trace
from workbench.capture.architectures import LayerSelectionError
from workbench.pipelines.random_pipelines import build_random_pipeline

PROMPTS = ["a red cat on a sofa, high quality", "a dog in the garden"]


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    pipe = build_random_pipeline("flux", tmp_path_factory.mktemp("flux"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, **options):
    return pipe(PROMPTS, num_inference_steps=2, height=64, width=64, max_sequence_length=32, output_type="np",
                generator=torch.Generator().manual_seed(0), **options).images


class FullWeights:
    """A processor that records the whole softmax(q k^T * scale) of the joint sequence, computed
    as Flux's processor computes q and k (diffusers' own rotary function), then defers to it."""

    def __init__(self, original):
        self.original, self.weights = original, []

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        from diffusers.models.embeddings import apply_rotary_emb

        heads = lambda x: x.unflatten(-1, (-1, attn.head_dim))  # noqa: E731  (batch, tokens, heads, dim)
        q, k = attn.norm_q(heads(attn.to_q(hidden_states))), attn.norm_k(heads(attn.to_k(hidden_states)))
        if encoder_hidden_states is not None:
            q = torch.cat([attn.norm_added_q(heads(attn.add_q_proj(encoder_hidden_states))), q], dim=1)
            k = torch.cat([attn.norm_added_k(heads(attn.add_k_proj(encoder_hidden_states))), k], dim=1)
        q, k = (apply_rotary_emb(x, image_rotary_emb, sequence_dim=1).transpose(1, 2) for x in (q, k))
        self.weights.append((q @ k.transpose(-1, -2) / attn.head_dim**0.5).softmax(-1))
        return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)


def test_flux_is_traced_bit_identically_double_and_single_stream(flux):
    before = dict(flux.transformer.attn_processors)
    plain = generate(flux)
    with trace(flux) as tr:
        traced = generate(flux)
    assert np.array_equal(plain, traced)
    assert flux.transformer.attn_processors == before
    maps = tr.attention_maps()
    assert [(layer.short, layer.stream) for layer in maps.layers] == [
        ("block.0", "joint"), ("block.1", "joint"), ("single.0", "single"), ("single.1", "single")]
    assert maps.maps[maps.layers[2].path].shape == (2, 32, 4, 4)  # T5's 32 keys; 64 px -> 8x8 latent -> 4x4 packed tokens
    assert maps.image_size == (64, 64)
    words = maps.word_span("sofa,", prompt=0).tokens
    assert "".join(maps.tokens.tokens[0][t] for t in words).lstrip("▁") == "sofa,"  # T5's SentencePiece pieces
    assert maps.word("garden", prompt=1).shape == (64, 64)


def manual_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """Attention written out: a backend whose call the recorder cannot see (the capture then
    reads the layer's projections)."""
    return ((query @ key.transpose(-1, -2)) / query.shape[-1] ** 0.5).softmax(-1) @ value


@pytest.mark.parametrize("layer", ["block.0", "single.1"])
@pytest.mark.parametrize("queries", ["image", "text"])
@pytest.mark.parametrize("attention", ["torch", "unseen"])
def test_flux_probabilities_equal_one_softmax_over_the_whole_rotated_sequence(flux, layer, queries, attention, monkeypatch,
                                                                              normaliser_reads):
    if attention == "unseen":
        monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", manual_attention)
    kind, index = layer.split(".")
    blocks = flux.transformer.transformer_blocks if kind == "block" else flux.transformer.single_transformer_blocks
    attn = blocks[int(index)].attn
    original = attn.processor
    recorder = FullWeights(original)
    attn.set_processor(recorder)
    try:
        generate(flux)
    finally:
        attn.set_processor(original)
    with trace(flux, layers=layer, steps=[0], queries=queries) as tr:
        generate(flux)
    maps = tr.attention_maps()
    found = maps.maps[tr.layers[0].path]  # (2, 32 text tokens, 4, 4)
    weights = recorder.weights[0].mean(1)  # (2, 32 text + 16 image queries, 32 text + 16 image keys), heads averaged
    if queries == "image":  # image queries on text keys
        expected = weights[:, 32:, :32].transpose(1, 2)
    else:  # each text query on the image keys
        expected = weights[:, :32, 32:]
    assert maps.source == f"{queries} queries"
    assert torch.allclose(found, expected.reshape(2, 32, 4, 4), atol=1e-5)
    # read from the layer's own call with the kernel's normaliser, or from its projections
    assert normaliser_reads == ([True] if attention == "torch" else [])


def test_a_single_stream_layer_asked_for_self_attention_says_what_it_has(flux):
    with pytest.raises(LayerSelectionError, match="'single.0' has no self-attention: it names single.0: single-stream attention.*layers="):
        trace(flux, layers="block", self_layers="single.0")
    with pytest.raises(ValueError, match="no self-attention layers.*block.0, block.1: joint attention"):
        trace(flux, self_layers="all")


def test_true_cfg_captures_the_prompt_call_of_each_step_only(flux):
    """With a negative prompt and true_cfg_scale, Flux calls its transformer twice per step,
    the negative prompt second: the trace keeps each step's first call, counts steps once, and
    generation stays bit-identical. Known answer: the first step's prompt call has the same
    inputs with or without true CFG, so its maps must be equal."""
    options = {"negative_prompt": ["blurry"] * 2, "true_cfg_scale": 2.0}
    plain = generate(flux, **options)
    calls = []
    handle = flux.transformer.register_forward_pre_hook(lambda module, args, kwargs: calls.append(1), with_kwargs=True)
    try:
        with trace(flux, per_step=True, layers=["block.0", "single.0"]) as tr:
            traced = generate(flux, **options)
    finally:
        handle.remove()
    assert np.array_equal(plain, traced) and len(calls) == 4  # two steps, two calls each
    maps = tr.attention_maps()
    assert maps.steps == [0, 1]
    with trace(flux, per_step=True, layers=["block.0", "single.0"]) as without:
        generate(flux)
    reference = without.attention_maps()
    for path, values in maps.maps.items():
        assert torch.equal(values[:, 0], reference.maps[path][:, 0]), path
        assert not torch.equal(values[:, 1], reference.maps[path][:, 1]), path  # the guided latents differ after it
