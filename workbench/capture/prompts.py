"""The prompts as the user wrote them, recorded while a pipeline runs.

A trace labels its maps with the prompt's words. The text encoder only sees token ids, and
ids cannot be decoded back into the user's words (added tokens decode glued to their
neighbours, case and punctuation are lost), so for the duration of a trace the pipeline's
tokenizer is stood in for by a recorder: every call goes to the real tokenizer unchanged, and
the texts are kept with the ids they gave. The text encoder's ids then pick their texts.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch

TOKENIZER_NAMES = ("tokenizer", "tokenizer_2", "tokenizer_3")


class RecordingTokenizer:
    """Delegates everything to `tokenizer`; keeps (texts, input_ids) of each call."""

    def __init__(self, tokenizer):
        object.__setattr__(self, "tokenizer", tokenizer)
        object.__setattr__(self, "calls", [])

    def __call__(self, text=None, *args, **kwargs):
        output = self.tokenizer(text, *args, **kwargs)
        texts = [text] if isinstance(text, str) else text
        if isinstance(texts, (list, tuple)) and all(isinstance(t, str) for t in texts) and "input_ids" in output:
            self.calls.append((list(texts), output["input_ids"]))
        return output

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __setattr__(self, name, value):
        setattr(self.tokenizer, name, value)

    def __len__(self) -> int:
        return len(self.tokenizer)

    def texts_for(self, ids: torch.Tensor) -> list[str] | None:
        """The texts of the first call that gave exactly `ids` (batch, sequence), if any."""
        ids = ids.detach().cpu()
        for texts, given in self.calls:
            given = torch.as_tensor(given)
            if given.shape == ids.shape and torch.equal(given.to(ids.dtype), ids):
                return texts
        return None


@contextmanager
def recording_prompts(pipe) -> Iterator[dict[str, RecordingTokenizer]]:
    """Stand a RecordingTokenizer in for each of the pipeline's tokenizers inside the block.

    The attribute is set on the instance directly (not through the pipeline's config), and
    the tokenizers come back on exit, also after an exception.
    """
    originals = {name: pipe.__dict__[name] for name in TOKENIZER_NAMES if pipe.__dict__.get(name) is not None}
    recorders = {name: RecordingTokenizer(tokenizer) for name, tokenizer in originals.items()}
    try:
        for name, recorder in recorders.items():
            object.__setattr__(pipe, name, recorder)
        yield recorders
    finally:
        for name, original in originals.items():
            object.__setattr__(pipe, name, original)


def recorded_texts(recorder: RecordingTokenizer | None, encoded: Sequence[torch.Tensor], call: int) -> list[str] | None:
    """The texts behind the text encoder's `call`-th input (0: the prompt, 1: the negative
    prompt), or None when that call did not happen or its ids came from no recorded text."""
    if recorder is None or call >= len(encoded):
        return None
    return recorder.texts_for(encoded[call])
