import pytest
from tokenizers import AddedToken

from workbench.capture.tokens import WordNotFoundError, align_words, collapse_slots, expand_slots, find_word
from workbench.shapesworld.models.tokenizer import build_word_tokenizer
from workbench.shapesworld import vocabulary

from workbench.pipelines.random_pipelines import write_bpe_tokenizer, write_char_tokenizer


@pytest.fixture(scope="module")
def char_tokenizer(tmp_path_factory):
    return write_char_tokenizer(tmp_path_factory.mktemp("tok"))


def test_word_level_tokenizer_gives_one_slot_per_word_after_the_start_token():
    tokenizer = build_word_tokenizer(vocabulary(), 20)
    spans = align_words("a small red circle on a gray background", tokenizer)
    assert [(s.word, s.occurrence, s.tokens) for s in spans[:4]] == [("a", 0, (1,)), ("small", 0, (2,)), ("red", 0, (3,)), ("circle", 0, (4,))]
    assert find_word(spans, "a", occurrence=1).tokens == (6,)


def test_character_tokenizer_spreads_words_over_several_slots(char_tokenizer):
    spans = align_words("a red circle", char_tokenizer)
    assert [s.tokens for s in spans] == [(1,), (2, 3, 4), (5, 6, 7, 8, 9, 10)]
    ids = char_tokenizer("a red circle").input_ids
    assert char_tokenizer.convert_ids_to_tokens(ids[2:5]) == ["r", "e", "d</w>"]


def test_repeated_words_are_told_apart_by_occurrence(char_tokenizer):
    spans = align_words("red cat and red dog", char_tokenizer)
    first, second = find_word(spans, "red", 0), find_word(spans, "red", 1)
    assert first.tokens == (1, 2, 3) and second.tokens == (10, 11, 12)


def test_learned_words_take_their_own_slot(char_tokenizer, tmp_path):
    tokenizer = write_char_tokenizer(tmp_path)
    tokenizer.add_tokens(["<new1>"])
    spans = align_words("a <new1> dog", tokenizer)
    assert find_word(spans, "<new1>").tokens == (2,)
    assert find_word(spans, "dog").tokens == (3, 4, 5)


def test_multi_vector_words_use_the_pipeline_converter(tmp_path):
    tokenizer = write_char_tokenizer(tmp_path)
    tokenizer.add_tokens(["S*", "S*_1", "S*_2"])
    expand = lambda text: text.replace("S*", "S* S*_1 S*_2")  # noqa: E731 - what diffusers' converter does
    spans = align_words("a S* toy", tokenizer, convert=expand)
    assert find_word(spans, "S*").tokens == (2, 3, 4)
    assert find_word(spans, "toy").tokens == (5, 6, 7)


def test_truncated_and_missing_words_are_explained(char_tokenizer):
    spans = align_words("a red circle", char_tokenizer, max_length=5)
    with pytest.raises(WordNotFoundError, match="truncated"):
        find_word(spans, "circle")
    with pytest.raises(WordNotFoundError, match="its words are: a red circle"):
        find_word(spans, "blue")
    with pytest.raises(WordNotFoundError, match="occurs 1 time"):
        find_word(spans, "red", occurrence=1)


@pytest.fixture(scope="module")
def bpe_tokenizer(tmp_path_factory):
    return write_bpe_tokenizer(tmp_path_factory.mktemp("bpe"))


def test_bpe_tokenizer_has_merges_and_word_ends(bpe_tokenizer):
    pieces = bpe_tokenizer.tokenize("a photo of a zebra")
    assert pieces[:3] == ["a</w>", "photo</w>", "of</w>"]  # corpus words are whole tokens
    assert len(pieces) > 5 and pieces[-1].endswith("</w>")  # an unseen word splits into pieces


def test_bpe_learned_words_punctuation_and_case_align_from_the_text(tmp_path):
    tokenizer = write_bpe_tokenizer(tmp_path)
    tokenizer.add_tokens([AddedToken("<cat-toy>", normalized=False)])
    ids = tokenizer("a <cat-toy> on the Sofa, cat").input_ids
    assert "<cat-toy>on" in tokenizer.decode(ids)  # why ids are never decoded into words
    spans = align_words("a <cat-toy> on the Sofa, cat", tokenizer)
    assert find_word(spans, "<cat-toy>").tokens == (2,)
    assert find_word(spans, "on").tokens == (3,)
    assert find_word(spans, "Sofa,").tokens == (5, 6)  # "sofa</w>", ",</w>"
    assert tokenizer.convert_ids_to_tokens(ids[5:7]) == ["sofa</w>", ",</w>"]


def test_collapse_slots_inverts_the_multi_vector_expansion(tmp_path):
    tokenizer = write_bpe_tokenizer(tmp_path)
    tokenizer.add_tokens([AddedToken(t, normalized=False) for t in ("S*", "S*_1", "S*_2", "<one>")])
    assert collapse_slots("a S* S*_1 S*_2 toy, S* S*_1 S*_2!  <one>", tokenizer) == "a S* toy, S*!  <one>"


def test_expand_slots_expands_each_multi_vector_word_once(tmp_path):
    tokenizer = write_bpe_tokenizer(tmp_path)
    tokenizer.add_tokens([AddedToken(t, normalized=False) for t in ("S*", "S*_1", "S*_2", "<one>", "S*x", "S*x_1")])
    assert expand_slots("a S* toy, S*x!  <one>", tokenizer) == "a S* S*_1 S*_2 toy, S*x S*x_1!  <one>"
    assert expand_slots("a S* S*_1 S*_2 toy", tokenizer) == "a S* S*_1 S*_2 toy"  # already expanded
    assert collapse_slots(expand_slots("S*x S* <one>", tokenizer), tokenizer) == "S*x S* <one>"
