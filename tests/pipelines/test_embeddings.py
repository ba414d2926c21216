import pytest
import torch
from safetensors.torch import save_file

from workbench.capture import trace
from workbench.pipelines.embeddings import EmbeddingFileError, LearnedWord, insert_embeddings, read_embeddings

WIDTH = 16  # the tiny ShapesPipeline's text width


def test_diffusers_single_and_multi_vector(tmp_path):
    save_file({"<cat>": torch.ones(WIDTH)}, tmp_path / "learned_embeds.safetensors")
    torch.save({"S*": torch.randn(3, WIDTH)}, tmp_path / "learned_embeds.bin")
    [cat] = read_embeddings(tmp_path / "learned_embeds.safetensors")
    [star] = read_embeddings(tmp_path / "learned_embeds.bin")
    assert (cat.token, cat.vectors.shape) == ("<cat>", (1, WIDTH))
    assert (star.token, star.n_vectors) == ("S*", 3)


def test_research_code_dicts_with_several_tokens(tmp_path):
    torch.save({"<asset0>": torch.randn(WIDTH), "<asset1>": torch.randn(WIDTH)}, tmp_path / "learned_embeds_final.bin")
    torch.save({"<new1>": torch.randn(WIDTH)}, tmp_path / "<new1>.bin")
    assert [w.token for w in read_embeddings(tmp_path / "learned_embeds_final.bin")] == ["<asset0>", "<asset1>"]
    assert [w.token for w in read_embeddings(tmp_path / "<new1>.bin")] == ["<new1>"]


def test_automatic1111_and_kohya(tmp_path):
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.randn(2, WIDTH)}, "name": "mystyle", "step": 500}, tmp_path / "a.pt")
    save_file({"emb_params": torch.randn(4, WIDTH)}, tmp_path / "k.safetensors")
    save_file({"clip_l": torch.randn(2, 768), "clip_g": torch.randn(2, 1280)}, tmp_path / "xl.safetensors")
    [a1111] = read_embeddings(tmp_path / "a.pt")
    assert (a1111.token, a1111.n_vectors) == ("mystyle", 2)
    [kohya] = read_embeddings(tmp_path / "k.safetensors", token="<k>")
    assert (kohya.token, kohya.n_vectors) == ("<k>", 4)
    xl = read_embeddings(tmp_path / "xl.safetensors")
    assert [(w.encoder, w.vectors.shape[1]) for w in xl] == [("text_encoder", 768), ("text_encoder_2", 1280)]


class Trap:
    """Unpickling this would create a file: the reader must never execute it."""

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(TRAP_MARKER),))


TRAP_MARKER = "/tmp/workbench-embedding-trap-was-executed"


def test_files_that_need_unpickling_are_refused_not_executed(tmp_path):
    import os

    if os.path.exists(TRAP_MARKER):
        os.remove(TRAP_MARKER)
    torch.save({"string_to_param": {"*": Trap()}}, tmp_path / "evil.pt")
    with pytest.raises(EmbeddingFileError, match="only full unpickling could load.*not executed"):
        read_embeddings(tmp_path / "evil.pt")
    assert not os.path.exists(TRAP_MARKER)


def test_unknown_layouts_and_missing_files_are_explained(tmp_path):
    torch.save({"weights": {"a": 1}, "meta": "x"}, tmp_path / "odd.bin")
    with pytest.raises(EmbeddingFileError, match=r"unknown embedding layout; found keys \['meta', 'weights'\]"):
        read_embeddings(tmp_path / "odd.bin")
    with pytest.raises(FileNotFoundError, match="no embedding file"):
        read_embeddings(tmp_path / "missing.bin")


def test_inserted_words_generate_and_trace(tiny_shapes_fresh):
    pipe = tiny_shapes_fresh
    word = LearnedWord("S*", torch.randn(3, WIDTH))
    ids = insert_embeddings(pipe, [word])["S*"]
    assert len(ids) == 3 and torch.equal(pipe.text_encoder.get_input_embeddings().weight[ids], word.vectors)
    with trace(pipe) as tr:
        pipe(["a S* on a gray background"], num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0))
    for maps in (tr.attention_maps(), tr.attention_maps(prompts=["a S* on a gray background"])):
        assert maps.tokens.texts == ["a S* on a gray background"]
        assert maps.word_span("S*").tokens == (2, 3, 4)
    assert maps.word("gray").shape == (32, 32)


def test_width_mismatch_and_clashes_name_both_sides(tiny_shapes_fresh):
    with pytest.raises(EmbeddingFileError, match="width 768 but text_encoder embeds tokens with width 16"):
        insert_embeddings(tiny_shapes_fresh, [LearnedWord("<x>", torch.randn(1, 768))])
    with pytest.raises(EmbeddingFileError, match="already has \\['red'\\]"):
        insert_embeddings(tiny_shapes_fresh, [LearnedWord("red", torch.randn(1, WIDTH))])
    with pytest.raises(EmbeddingFileError, match="text_encoder_2, which this ShapesPipeline does not have"):
        insert_embeddings(tiny_shapes_fresh, [LearnedWord("<g>", torch.randn(1, 1280), "text_encoder_2")])


def test_insertion_is_all_or_nothing_and_names_the_file(tiny_shapes_fresh, tmp_path):
    save_file({"<good>": torch.randn(WIDTH)}, tmp_path / "good.safetensors")
    save_file({"<wide>": torch.randn(768)}, tmp_path / "wide.safetensors")
    words = read_embeddings(tmp_path / "good.safetensors") + read_embeddings(tmp_path / "wide.safetensors")
    size = len(tiny_shapes_fresh.tokenizer)
    with pytest.raises(EmbeddingFileError, match=r"'<wide>' \(from .*wide.safetensors\) has width 768 but text_encoder embeds tokens with width 16"):
        insert_embeddings(tiny_shapes_fresh, words)
    assert len(tiny_shapes_fresh.tokenizer) == size  # the good word was not inserted either


def test_a_word_must_cover_every_text_encoder(tmp_path):
    from workbench.pipelines.random_pipelines import build_random_pipeline

    sdxl = build_random_pipeline("sdxl", tmp_path)
    save_file({"emb_params": torch.randn(2, 32)}, tmp_path / "sd15-word.safetensors")
    with pytest.raises(EmbeddingFileError, match="has vectors for text_encoder but this StableDiffusionXLPipeline encodes prompts with text_encoder, text_encoder_2"):
        insert_embeddings(sdxl, read_embeddings(tmp_path / "sd15-word.safetensors"))


def test_nan_empty_and_broken_files_are_refused_by_name(tmp_path):
    save_file({"<nan>": torch.tensor([float("nan")] * WIDTH)}, tmp_path / "nan.safetensors")
    save_file({"<empty>": torch.zeros(0, WIDTH)}, tmp_path / "empty.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(EmbeddingFileError, match="nan.safetensors: entry '<nan>' holds NaN"):
        read_embeddings(tmp_path / "nan.safetensors")
    with pytest.raises(EmbeddingFileError, match="empty.safetensors: entry '<empty>' has shape"):
        read_embeddings(tmp_path / "empty.safetensors")
    with pytest.raises(EmbeddingFileError, match="broken.safetensors: not a readable safetensors file"):
        read_embeddings(tmp_path / "broken.safetensors")
    for name in ("cut.pt", "cut.bin"):  # A1111 and diffusers' torch files, cut short
        torch.save({"<w>": torch.randn(WIDTH)}, tmp_path / name)
        (tmp_path / name).write_bytes((tmp_path / name).read_bytes()[:40])
        with pytest.raises(EmbeddingFileError, match=f"{name}: not a readable torch file"):
            read_embeddings(tmp_path / name)
