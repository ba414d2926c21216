"""Word <-> token alignment for any tokenizer, from the prompt text itself.

A word's tokens are found by tokenizing growing prefixes of the prompt: the tokens that word
i adds are its tokens. This holds for byte-level BPE (CLIP splits on whitespace before merging),
for word-level tokenizers, and for learned pseudo-words added with `add_tokens`; multi-vector
pseudo-words (`S*` -> `S* S*_1 S*_2`) are expanded first by the pipeline's own converter.

Token ids are never decoded back into words: added tokens decode glued to their neighbours
(`<cat-toy>on`), and decoding loses the user's case and punctuation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class WordSpan:
    """A word of a prompt, its occurrence among equal words (0 = first) and its token slots."""

    word: str
    occurrence: int
    tokens: tuple[int, ...]


class WordNotFoundError(KeyError):
    """A word asked for that the prompt does not contain (the message lists the prompt's words)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _content_ids(tokenizer, text: str) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False).input_ids
    return list(ids)


def align_words(
    prompt: str,
    tokenizer,
    max_length: int | None = None,
    convert: Callable[[str], str] | None = None,
) -> list[WordSpan]:
    """Token slots of each whitespace-separated word of `prompt`, in the padded sequence.

    Slot 0 is the start token when the tokenizer adds one. Words cut off by truncation at
    `max_length` get no slots.

    Args:
        prompt: the prompt as given to the pipeline.
        tokenizer: the pipeline's tokenizer.
        max_length: the sequence length (default: tokenizer.model_max_length).
        convert: a prompt rewriter applied before tokenizing (e.g. diffusers' multi-vector
            textual-inversion expansion); words keep the user's spelling.
    """
    convert = convert or (lambda text: text)
    max_length = max_length or tokenizer.model_max_length
    # prefixes keep the prompt's own whitespace (a newline tokenizes unlike a space)
    ends = [match.end() for match in re.finditer(r"\S+", prompt)]
    words = prompt.split()
    with_specials = tokenizer(convert(prompt), add_special_tokens=True).input_ids
    offset = 1 if tokenizer.bos_token_id is not None and with_specials[:1] == [tokenizer.bos_token_id] else 0
    last_slot = max_length - (1 if tokenizer.eos_token_id is not None else 0)
    spans, seen, previous = [], {}, 0
    for i, word in enumerate(words):
        count = len(_content_ids(tokenizer, convert(prompt[: ends[i]])))
        slots = tuple(s for s in range(offset + previous, offset + count) if s < last_slot)
        spans.append(WordSpan(word, seen.get(word, 0), slots))
        seen[word] = seen.get(word, 0) + 1
        previous = count
    return spans


def _multi_slot_words(tokenizer) -> list[tuple[str, str]]:
    """(token, its expansion "T T_1 T_2") for each multi-vector learned word the tokenizer has
    as added tokens T, T_1, ...; longest tokens first."""
    added = set(tokenizer.get_added_vocab())
    found = []
    for token in sorted(added, key=len, reverse=True):
        if f"{token}_1" not in added:
            continue
        count = 1
        while f"{token}_{count}" in added:
            count += 1
        found.append((token, " ".join([token] + [f"{token}_{i}" for i in range(1, count)])))
    return found


def collapse_slots(text: str, tokenizer) -> str:
    """Undo diffusers' multi-vector expansion: "a S* S*_1 S*_2 toy" -> "a S* toy".

    The pipeline's tokenizer sees the expanded text; the user wrote the collapsed one. Only
    tokens the tokenizer has as added `T`, `T_1`, ... are collapsed, in place (spacing kept).
    """
    for token, expanded in _multi_slot_words(tokenizer):
        text = text.replace(expanded, token)
    return text


def expand_slots(text: str, tokenizer) -> str:
    """diffusers' multi-vector expansion (`maybe_convert_prompt`), for pipelines that do not do
    it themselves (SD3, Flux, PixArt, Sana): "a S* toy" -> "a S* S*_1 S*_2 toy", so that every
    vector of the learned word reaches the model. Words already expanded stay as they are.

    Example:
        >>> pipe(expand_slots("a photo of S*", pipe.tokenizer))
    """
    words = dict(_multi_slot_words(tokenizer))
    if not words:
        return text
    # one pass, longest token first, so that no expansion is expanded again
    pattern = re.compile("|".join(re.escape(token) for token in words))
    return pattern.sub(lambda match: words[match.group(0)], collapse_slots(text, tokenizer))


def find_word(spans: Sequence[WordSpan], word: str, occurrence: int = 0) -> WordSpan:
    """The span of `word` (its `occurrence`-th appearance).

    Raises:
        WordNotFoundError: naming the prompt's words; or if the word was truncated away.
    """
    for span in spans:
        if span.word == word and span.occurrence == occurrence:
            if not span.tokens:
                raise WordNotFoundError(f"the word {word!r} lies beyond the tokenizer's maximum length and was truncated")
            return span
    words = " ".join(s.word for s in spans)
    times = sum(s.word == word for s in spans)
    detail = f" (it occurs {times} time(s); occurrence counts from 0)" if times else ""
    raise WordNotFoundError(f"the word {word!r}, occurrence {occurrence}, is not in the prompt{detail}; its words are: {words}")
