"""A word-level tokenizer for the ShapesWorld vocabulary.

One token per word keeps word <-> token alignment trivial on the embedded model (Stable
Diffusion's BPE tokenizer is the hard case the capture code also handles). It is a
`PreTrainedTokenizerFast`, so it saves and loads with `save_pretrained` / `from_pretrained` and
accepts new words with `add_tokens`, as learned-embedding files need.
"""

from __future__ import annotations

from typing import Sequence

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<|pad|>", "<|unk|>", "<|startoftext|>", "<|endoftext|>"
# CLIPTextModel treats eos_token_id == 2 as a legacy config and pools at argmax(input_ids);
# putting BOS at 2 and EOS at 3 makes it pool at the real end-of-text token.
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)


def build_word_tokenizer(words: Sequence[str], max_length: int) -> PreTrainedTokenizerFast:
    """A tokenizer that maps each of `words` to one token, adds start/end tokens and pads.

    Args:
        words: the vocabulary, lower-case, without duplicates.
        max_length: the padded sequence length (start and end tokens included).

    Raises:
        ValueError: on duplicate words or a max_length too short for any caption.
    """
    if len(set(words)) != len(words):
        raise ValueError("the vocabulary has duplicate words")
    if max_length < 3:
        raise ValueError(f"max_length must be at least 3, got {max_length}")
    vocab = {token: i for i, token in enumerate(list(SPECIAL_TOKENS) + list(words))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=max_length,
    )
