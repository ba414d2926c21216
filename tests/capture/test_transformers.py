"""trace on a transformer denoiser with cross-attention (PixArt's architecture, random weights,
a T5 encoder with a SentencePiece-style unigram tokenizer)."""

import json

import numpy as np
import pytest
import torch

from workbench import trace
from workbench.pipelines.random_pipelines import build_random_pipeline

PROMPTS = ["a red cat on a sofa, high quality", "a dog in the garden"]


@pytest.fixture(scope="module")
def pixart(tmp_path_factory):
    pipe = build_random_pipeline("pixart", tmp_path_factory.mktemp("pixart"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, **options):
    return pipe(PROMPTS, num_inference_steps=2, output_type="np", max_sequence_length=32, clean_caption=False,
                generator=torch.Generator().manual_seed(0), **options).images


def test_a_traced_generation_is_bit_identical_and_the_processors_come_back(pixart):
    before = dict(pixart.transformer.attn_processors)
    plain = generate(pixart)
    with trace(pixart, self_layers="all") as tr:
        traced = generate(pixart)
    assert np.array_equal(plain, traced)
    assert pixart.transformer.attn_processors == before
    maps = tr.attention_maps()
    assert [(layer.short, layer.kind) for layer in maps.layers] == [("block.0", "cross"), ("block.1", "cross"), ("block.0", "self"), ("block.1", "self")]
    cross = maps.maps[maps.layers[0].path]
    assert cross.shape == (2, 32, 16, 16)  # the conditional half: 2 prompts, 32 T5 tokens, 16x16 patches of a 32x32 latent
    assert torch.allclose(cross.sum(1), torch.ones(2, 16, 16), atol=1e-5)


def test_sentencepiece_words_are_found_by_name(pixart):
    with trace(pixart) as tr:
        generate(pixart)
    maps = tr.attention_maps()
    pieces = pixart.tokenizer.convert_ids_to_tokens(pixart.tokenizer(PROMPTS[0]).input_ids)
    sofa = maps.word_span("sofa,", prompt=0)  # words are the prompt's, split at whitespace as written
    assert "".join(pieces[t] for t in sofa.tokens).lstrip("▁") == "sofa,"
    assert maps.word_span("a", prompt=0).tokens == (0,)  # T5 adds no start token
    assert maps.word("garden", prompt=1).shape == (256, 256)
    assert not torch.equal(maps.word("cat", prompt=0), maps.word("dog", prompt=1))


def test_guidance_is_told_from_the_negative_prompt_on_pipelines_without_the_flag(pixart):
    assert getattr(pixart, "do_classifier_free_guidance", None) is None
    with trace(pixart) as guided:
        generate(pixart, guidance_scale=4.5)
    with trace(pixart) as unguided:
        generate(pixart, guidance_scale=1.0)
    first = lambda tr: tr.attention_maps().maps[tr.layers[0].path]  # noqa: E731
    assert first(guided).shape[0] == first(unguided).shape[0] == 2
    with trace(pixart, guidance="uncond") as negative:
        generate(pixart, negative_prompt="blurry")
    assert negative.attention_maps().tokens.texts == ["blurry", "blurry"]


@pytest.mark.parametrize("family, pipeline_class, guidance, size",
                         [("pixart", "PixArtAlphaPipeline", 4.5, ""), ("sd3", "StableDiffusion3Pipeline", 7.0, ""),
                          ("sana", "SanaPipeline", 4.5, "height = 64\nwidth = 64\nuse_resolution_binning = false\n")])
def test_a_transformer_pipeline_folder_runs_an_attention_probe(tmp_path, family, pipeline_class, guidance, size):
    from workbench.pipelines.random_pipelines import save_random_pipeline
    from workbench.probes import parse_probe, run_probe

    folder = save_random_pipeline(family, tmp_path)
    probe = parse_probe(f'name = "{family}"\n[model]\npipeline = "{folder}"\nsteps = 2\n{size}[inputs]\nprompts = ["a dog in the garden"]\n[attention]\n',
                        "p.toml")
    run = run_probe(probe, tmp_path / "run")
    record = json.loads((run / "run.json").read_text())
    assert record["model"]["class"] == pipeline_class and record["model"]["generation"]["guidance_scale"] == guidance  # the pipeline's own
    assert record["parts"]["attention"]["summary"]["heat_layers"] == ["block.0", "block.1"]
    page = (run / "dashboard.html").read_text()
    assert "<h2>Heat maps</h2>" in page and "a dog in the garden" in page  # the prompt is in the page's prompt menu


@pytest.fixture(scope="module")
def sd3(tmp_path_factory):
    pipe = build_random_pipeline("sd3", tmp_path_factory.mktemp("sd3"), tokenizer="bpe")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_joint_probabilities_equal_the_text_part_of_one_softmax_over_all_keys(sd3):
    from workbench.capture.probabilities import joint_probabilities

    attn = sd3.transformer.transformer_blocks[0].attn
    image, text = torch.randn(2, 20, attn.query_dim), torch.randn(2, 7, attn.added_kv_proj_dim)
    with torch.no_grad():
        found = joint_probabilities(attn, attn.to_q(image), attn.to_k(image), attn.add_k_proj(text))
        heads = lambda x: x.view(2, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)  # noqa: E731
        norm = lambda f, x: f(x) if f is not None else x  # noqa: E731  (SD3.5 normalises q and k; SD3 does not)
        q, k = norm(attn.norm_q, heads(attn.to_q(image))), norm(attn.norm_k, heads(attn.to_k(image)))
        t = norm(attn.norm_added_k, heads(attn.add_k_proj(text)))
        scores = torch.cat([q @ k.transpose(-1, -2), q @ t.transpose(-1, -2)], dim=-1) / q.shape[-1] ** 0.5
        expected = scores.softmax(-1)[..., 20:]
    assert found.shape == (2, attn.heads, 20, 7) and torch.allclose(found, expected, atol=1e-6)


class JointWeights:
    """A processor that records the whole softmax(q k^T * scale) of SD3's [image; text] joint
    sequence, computed from the layer's projections and norms, then defers to the original."""

    def __init__(self, original):
        self.original, self.weights = original, []

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        heads = lambda x: x.view(x.shape[0], -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)  # noqa: E731
        norm = lambda f, x: f(x) if f is not None else x  # noqa: E731
        q = torch.cat([norm(attn.norm_q, heads(attn.to_q(hidden_states))),
                       norm(attn.norm_added_q, heads(attn.add_q_proj(encoder_hidden_states)))], dim=2)
        k = torch.cat([norm(attn.norm_k, heads(attn.to_k(hidden_states))),
                       norm(attn.norm_added_k, heads(attn.add_k_proj(encoder_hidden_states)))], dim=2)
        self.weights.append((q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).softmax(-1))
        return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)


@pytest.mark.parametrize("queries", ["image", "text"])
@pytest.mark.parametrize("block", [0, 1])  # block 1, the last, ends the text stream (context_pre_only)
def test_sd3_traced_probabilities_equal_one_softmax_over_the_image_then_text_sequence(sd3, queries, block, normaliser_reads):
    options = dict(num_inference_steps=1, output_type="np", max_sequence_length=32, generator=torch.Generator().manual_seed(0))
    attn = sd3.transformer.transformer_blocks[block].attn
    original = attn.processor
    recorder = JointWeights(original)
    attn.set_processor(recorder)
    try:
        sd3(PROMPTS, **options)
    finally:
        attn.set_processor(original)
    options["generator"] = torch.Generator().manual_seed(0)
    with trace(sd3, layers=f"block.{block}", queries=queries) as tr:
        sd3(PROMPTS, **options)
    found = tr.attention_maps().maps[tr.layers[0].path]  # (2 prompts, 109 text tokens, 16, 16)
    weights = recorder.weights[0][2:].mean(1)  # the prompts' rows (the unconditional rows come first), heads averaged
    image = 256
    expected = weights[:, :image, image:].transpose(1, 2) if queries == "image" else weights[:, image:, :image]
    assert torch.allclose(found, expected.reshape(2, -1, 16, 16), atol=1e-5)
    assert normaliser_reads == [True]  # from the layer's own call, with the kernel's normaliser


def test_sd3_joint_attention_is_traced_bit_identically_with_words_in_clip_and_t5(sd3):
    options = dict(num_inference_steps=2, output_type="np", max_sequence_length=32)
    plain = sd3(PROMPTS, generator=torch.Generator().manual_seed(0), **options).images
    with trace(sd3, self_layers="all") as tr:
        traced = sd3(PROMPTS, generator=torch.Generator().manual_seed(0), **options).images
    assert np.array_equal(plain, traced)
    maps = tr.attention_maps()
    assert [(layer.short, layer.kind) for layer in maps.layers] == [("block.0", "cross"), ("block.1", "cross"), ("block.0", "self")]
    joint = maps.maps[maps.layers[0].path]
    assert joint.shape == (2, 77 + 32, 16, 16)  # CLIP's 77 text keys, then T5's 32
    assert (joint.sum(1) < 1).all() and (joint.sum(1) > 0).all()  # the rest of each query's mass is on image keys
    cat = maps.word_span("cat", prompt=0)
    clip = [t for t in cat.tokens if t < 77]
    t5 = [t - 77 for t in cat.tokens if t >= 77]
    assert maps.tokens.tokens[0][clip[0]] == "cat</w>" and "".join(sd3.tokenizer_3.convert_ids_to_tokens(
        sd3.tokenizer_3("a red cat on a sofa").input_ids)[t] for t in t5).lstrip("▁") == "cat"
    assert maps.word("garden", prompt=1).shape == (256, 256)
