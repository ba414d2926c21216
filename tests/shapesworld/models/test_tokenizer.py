from transformers import AutoTokenizer

from workbench.shapesworld.models.tokenizer import build_word_tokenizer
from workbench.shapesworld import vocabulary


def test_one_token_per_word_with_start_end_and_padding(tmp_path):
    tokenizer = build_word_tokenizer(vocabulary(), max_length=12)
    ids = tokenizer("a small red circle on a gray background", padding="max_length", max_length=12).input_ids
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[:10] == ["<|startoftext|>", "a", "small", "red", "circle", "on", "a", "gray", "background", "<|endoftext|>"]
    assert tokens[10:] == ["<|pad|>", "<|pad|>"]
    # CLIPTextModel pools at argmax(ids) when eos_token_id == 2; ours must not be 2.
    assert tokenizer.eos_token_id != 2


def test_save_and_load_round_trip(tmp_path):
    tokenizer = build_word_tokenizer(vocabulary(), max_length=20)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "a large blue cross and a small green square on a striped background"
    assert loaded(text).input_ids == tokenizer(text).input_ids
    assert loaded.model_max_length == 20


def test_new_words_can_be_added():
    tokenizer = build_word_tokenizer(vocabulary(), max_length=20)
    tokenizer.add_tokens(["<new1>"])
    ids = tokenizer("a <new1> on a gray background").input_ids
    assert tokenizer.convert_ids_to_tokens(ids)[2] == "<new1>"
    assert tokenizer.unk_token_id not in ids
