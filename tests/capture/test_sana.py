"""trace on Sana's architecture (random weights): cross-attention read as PixArt's, linear
self-attention refused, and the prompt's words found in keys cut from an instruction + prompt."""

import numpy as np
import pytest
import torch

from workbench import trace
from workbench.capture.architectures import LayerSelectionError
from workbench.pipelines.random_pipelines import build_random_pipeline

PROMPTS = ["a red cat on a sofa, high quality", "a dog in the garden"]


@pytest.fixture(scope="module")
def sana(tmp_path_factory):
    pipe = build_random_pipeline("sana", tmp_path_factory.mktemp("sana"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, **options):
    return pipe(PROMPTS, num_inference_steps=2, height=64, width=64, max_sequence_length=32, use_resolution_binning=False,
                output_type="np", generator=torch.Generator().manual_seed(0), **options).images


@pytest.mark.parametrize("instruction", ["default", None])
def test_sana_is_traced_bit_identically_with_the_prompt_words_in_the_kept_keys(sana, instruction):
    options = {} if instruction == "default" else {"complex_human_instruction": None}
    plain = generate(sana, **options)
    with trace(sana) as tr:
        traced = generate(sana, **options)
    assert np.array_equal(plain, traced)
    maps = tr.attention_maps()
    assert [(layer.short, layer.kind) for layer in maps.layers] == [("block.0", "cross"), ("block.1", "cross")]
    assert maps.maps[maps.layers[0].path].shape == (2, 32, 32, 32)  # 32 kept keys; 64 px -> 32x32 latent
    assert maps.tokens.texts == PROMPTS  # the instruction's words are not among the keys
    garden = maps.word_span("garden", prompt=1).tokens
    assert "".join(maps.tokens.tokens[1][t] for t in garden).lstrip("▁") == "garden"
    assert maps.tokens.tokens[1][0] == "<bos>"  # Sana keeps the first token


def test_sanas_linear_self_attention_is_refused_with_the_reason(sana):
    with pytest.raises(LayerSelectionError, match="linear attention .*no attention probabilities"):
        trace(sana, self_layers="all")


def test_a_saved_sana_folder_loads_and_traces_the_same(sana, tmp_path):
    from workbench.pipelines.loading import load_pipeline

    sana.save_pretrained(tmp_path)
    loaded = load_pipeline(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    with trace(loaded) as tr:
        images = generate(loaded)
    assert np.array_equal(images, generate(sana))
    assert tr.attention_maps().word("garden", prompt=1).shape == (64, 64)
