"""A user's Stable Diffusion with learned words: the words are found by name after a trace, with
a real byte-level BPE tokenizer, in batches of several images per prompt."""

import pytest
import torch
from safetensors.torch import save_file

from workbench.capture import trace
from workbench.capture.tokens import expand_slots
from workbench.pipelines.embeddings import insert_embeddings, read_embeddings
from workbench.pipelines.loading import load_pipeline
from workbench.pipelines.random_pipelines import save_random_pipeline

TEXT_WIDTH = 32  # the random pipelines' text encoder width


def generate(pipe, prompts, **kwargs):
    kwargs = {"num_inference_steps": 2, "height": 64, "width": 64, "output_type": "np", **kwargs}
    return pipe(prompts, generator=torch.Generator().manual_seed(0), **kwargs).images


@pytest.fixture(scope="module")
def sd_with_words(tmp_path_factory):
    """An SD 1.5-architecture folder with a BPE tokenizer, loaded, with three learned words
    read from a diffusers .safetensors, an A1111 .pt and a kohya file."""
    folder = tmp_path_factory.mktemp("sd-bpe")
    pipe = load_pipeline(save_random_pipeline("sd15", folder, tokenizer="bpe"))
    pipe.set_progress_bar_config(disable=True)
    save_file({"<cat-toy>": torch.randn(TEXT_WIDTH)}, folder / "learned_embeds.safetensors")
    torch.save({"string_to_param": {"*": torch.randn(3, TEXT_WIDTH)}, "name": "S*"}, folder / "style.pt")
    save_file({"emb_params": torch.randn(2, TEXT_WIDTH)}, folder / "foxstyle.safetensors")
    words = [w for name in ("learned_embeds.safetensors", "style.pt", "foxstyle.safetensors") for w in read_embeddings(folder / name)]
    insert_embeddings(pipe, words)
    return pipe


def test_learned_words_are_found_by_name_after_a_trace(sd_with_words):
    prompts = ["a <cat-toy> on the Sofa, a S* dog", "foxstyle of a dog and a <cat-toy>"]
    with trace(sd_with_words) as tr:
        generate(sd_with_words, prompts)
    maps = tr.attention_maps()  # no prompts given: the text is recorded from the tokenizer
    assert maps.tokens.texts == prompts
    assert maps.word_span("<cat-toy>", prompt=0).tokens == (2,)
    assert maps.word_span("on", prompt=0).tokens == (3,)
    assert len(maps.word_span("S*", prompt=0).tokens) == 3  # multi-vector word: its three slots
    assert maps.word_span("Sofa,", prompt=0).tokens == (5, 6)
    assert maps.word_span("foxstyle", prompt=1).tokens == (1, 2)
    assert maps.word("<cat-toy>", prompt=1).shape == (64, 64)
    assert maps.word_span("a", prompt=1, occurrence=1).tokens == (7,)
    # the tokenizer is the pipeline's own again, and ids alone still decode glued
    assert type(sd_with_words.tokenizer).__name__ == "CLIPTokenizer"


def test_images_per_prompt_are_rows_of_their_prompt(sd_with_words):
    prompts = ["a red cat", "a blue dog"]
    with trace(sd_with_words) as tr:
        generate(sd_with_words, prompts, num_images_per_prompt=2)
    maps = tr.attention_maps()
    assert maps.images_per_prompt == 2 and next(iter(maps.maps.values())).shape[0] == 4
    assert maps.rows(1) == [2, 3] and maps.rows(1, image=0) == [2]
    layer = maps.layers[0]
    slot = maps.word_span("dog", prompt=1).tokens[0]
    direct = maps.maps[layer.path][3, slot]
    got = maps.word("dog", prompt=1, image=1, layers=[layer.path], size=tuple(direct.shape))
    assert torch.allclose(got, direct, atol=1e-6)
    mean = maps.word("dog", prompt=1, layers=[layer.path], size=tuple(direct.shape))
    assert torch.allclose(mean, maps.maps[layer.path][2:4, slot].mean(0), atol=1e-6)
    with pytest.raises(IndexError, match="each prompt has 2 image"):
        maps.word("dog", prompt=1, image=2)
    with pytest.raises(IndexError, match="2 prompt"):
        maps.word("dog", prompt=2)


def test_unconditional_half_is_labelled_with_the_negative_prompt(sd_with_words):
    with trace(sd_with_words, guidance="uncond") as tr:
        generate(sd_with_words, ["a red cat"], negative_prompt=["blurry <cat-toy>"])
    maps = tr.attention_maps()
    assert maps.tokens.texts == ["blurry <cat-toy>"]
    assert maps.word("<cat-toy>").shape == (64, 64)


def test_word_maps_upsample_only_the_word_and_equal_the_full_stack(sd_with_words):
    with trace(sd_with_words, per_step=True, heads="keep") as tr:
        generate(sd_with_words, ["a S* dog", "a cat"])
    maps = tr.attention_maps()
    slots = list(maps.word_span("S*").tokens)
    full = maps.stack(size=(48, 48))[0]  # (step, layer, head, token, y, x): every token upsampled
    expected = full.mean(0).mean(0).mean(0)[slots].mean(0)
    assert torch.allclose(maps.word("S*", size=(48, 48)), expected, atol=1e-6)
    assert torch.allclose(maps.word("S*", size=(48, 48), step=1, head=0), full[1, :, 0][:, slots].mean((0, 1)), atol=1e-6)


def test_sdxl_two_encoder_words_from_a_kohya_file(tmp_path):
    pipe = load_pipeline(save_random_pipeline("sdxl", tmp_path, tokenizer="bpe"))
    pipe.set_progress_bar_config(disable=True)
    save_file({"clip_l": torch.randn(2, TEXT_WIDTH), "clip_g": torch.randn(2, TEXT_WIDTH)}, tmp_path / "mv.safetensors")
    insert_embeddings(pipe, read_embeddings(tmp_path / "mv.safetensors", token="<mv>"))
    with trace(pipe) as tr:
        generate(pipe, ["a <mv> dog"])
    maps = tr.attention_maps()
    assert maps.word_span("<mv>").tokens == (2, 3) and maps.word_span("dog").tokens == (4,)
    assert maps.word("<mv>").shape == (64, 64)


@pytest.mark.parametrize("family, keys", [("flux", ("clip_l", "t5xxl")), ("sd3", ("clip_l", "clip_g", "t5xxl"))])
def test_a_kohya_word_with_t5_vectors_is_found_by_name_in_the_t5_slots(tmp_path, family, keys):
    from workbench.analyses.generation import pipeline_prompts
    from workbench.pipelines.random_pipelines import build_random_pipeline

    pipe = build_random_pipeline(family, tmp_path)
    pipe.set_progress_bar_config(disable=True)
    widths = {"clip_l": TEXT_WIDTH, "clip_g": TEXT_WIDTH, "t5xxl": (TEXT_WIDTH if family == "flux" else 2 * TEXT_WIDTH)}
    save_file({key: torch.randn(2, widths[key]) for key in keys}, tmp_path / "toy.safetensors")
    insert_embeddings(pipe, read_embeddings(tmp_path / "toy.safetensors", token="<toy>"))
    t5 = pipe.tokenizer_2 if family == "flux" else pipe.tokenizer_3
    # diffusers' SD3 pipeline does not expand multi-vector words ("<toy>" -> "<toy> <toy>_1"), Flux's
    # does: pipeline_prompts expands them for SD3, as the analyses do
    prompt = pipeline_prompts(pipe, ["a <toy> on a sofa"])[0]
    assert prompt == ("a <toy> on a sofa" if family == "flux" else "a <toy> <toy>_1 on a sofa")
    with trace(pipe) as tr:
        generate(pipe, [prompt], max_sequence_length=32)
    maps = tr.attention_maps()
    assert maps.tokens.texts == ["a <toy> on a sofa"]  # labelled as written
    t5_start = 0 if family == "flux" else 77  # SD3's T5 keys follow CLIP's 77
    t5_slots = [t - t5_start for t in maps.word_span("<toy>").tokens if t >= t5_start]
    ids = t5(expand_slots("a <toy> on a sofa", t5)).input_ids
    pieces = t5.convert_ids_to_tokens([ids[s] for s in t5_slots])  # T5 puts a word-start piece before an added token
    assert [p for p in pieces if p != "▁"] == ["<toy>", "<toy>_1"]
    toy, on = maps.word_span("<toy>").tokens, maps.word_span("on").tokens
    assert on[0] == (4 if family == "sd3" else toy[-1] + 1)  # SD3's CLIP keys: <s> a <toy> <toy>_1 on; Flux's T5 keys
    assert maps.word("<toy>").shape == (64, 64)
    if family == "sd3":  # written once, only the first vector reaches SD3: said, not mislabelled
        with trace(pipe) as tr:
            generate(pipe, ["a <toy> on a sofa"], max_sequence_length=32)
        with pytest.raises(ValueError, match=r"multi-vector learned word written once.*StableDiffusion3Pipeline.*expand_slots"):
            tr.attention_maps()
