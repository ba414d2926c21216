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


def test_a_pixart_folder_runs_an_attention_probe(tmp_path):
    from workbench.pipelines.random_pipelines import save_random_pipeline
    from workbench.probes import parse_probe, run_probe

    folder = save_random_pipeline("pixart", tmp_path)
    probe = parse_probe(f'name = "pixart"\n[model]\npipeline = "{folder}"\nsteps = 2\n[inputs]\nprompts = ["a dog in the garden"]\n[attention]\n', "pixart.toml")
    run = run_probe(probe, tmp_path / "run", dashboard=False)
    record = json.loads((run / "run.json").read_text())
    assert record["model"]["class"] == "PixArtAlphaPipeline" and record["model"]["generation"]["guidance_scale"] == 4.5
    assert record["parts"]["attention"]["summary"]["heat_layers"] == ["block.0", "block.1"]
