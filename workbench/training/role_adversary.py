"""An adversary for the word encoder's roles: linear probes that try to read from each word
what it should not carry, and a confusion loss that teaches the encoder to leave them guessing
(Tzeng et al., 2015, "Simultaneous deep transfer across domains and tasks").

The auxiliary words w1..wk should not tell the object's shape, colour or size; the primary word
w0 should not tell the background. The probes learn to read those factors from the words (their
loss does not reach the encoder); the encoder learns to make the probes' predictions uniform
(that loss does not reach the probes). Uniform predictions, rather than a reversed gradient,
because an encoder that maximises the probes' error can do so by making them confidently wrong,
which still carries the factor. Split-role training alone (word_roles) only makes each side
sufficient for its part; it does not stop a word from also carrying the other part, which is
what the probe-leakage matrix measured (benchmarks/primary_vs_auxiliary.py).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..world.scenes import Scene
from ..world.vocabulary import FACTOR_VALUES

OBJECT_FACTORS: tuple[str, ...] = ("shape", "color", "size")


def _standardised(x: torch.Tensor) -> torch.Tensor:
    """Each feature centred and scaled over the batch (the statistics keep their gradient): the
    probes read what a standardised linear probe reads, so the encoder cannot hide a factor in
    a direction of small variance, as it did from probes on the raw words."""
    return (x - x.mean(dim=0)) / (x.std(dim=0) + 1e-4)


class RoleAdversary(nn.Module):
    """Linear probes: object factors from each auxiliary word (one head per factor, shared by
    the auxiliary words), the background from the primary word."""

    def __init__(self, width: int):
        super().__init__()
        self.heads = nn.ModuleDict({f: nn.Linear(width, len(FACTOR_VALUES[f])) for f in OBJECT_FACTORS})
        self.heads["background"] = nn.Linear(width, len(FACTOR_VALUES["background"]))

    def _readings(self, words: torch.Tensor, scenes: Sequence[Scene]):
        """(factor, the words that must not tell it (n, width), its labels (n,))."""
        if words.shape[1] < 2:
            raise ValueError(f"the adversary needs a primary and at least one auxiliary word, got {words.shape[1]} word(s)")
        auxiliary = words[:, 1:].flatten(0, 1)  # (batch * k, width), sample-major
        for factor in OBJECT_FACTORS:
            labels = torch.tensor([FACTOR_VALUES[factor].index(getattr(s.objects[0], factor)) for s in scenes])
            yield factor, auxiliary, labels.repeat_interleave(words.shape[1] - 1)
        yield "background", words[:, 0], torch.tensor([FACTOR_VALUES["background"].index(s.background) for s in scenes])

    def losses(self, words: torch.Tensor, scenes: Sequence[Scene]) -> tuple[torch.Tensor, torch.Tensor]:
        """(probe loss, confusion) on words (batch, n_words, width) of one-object scenes.

        probe loss: the probes' mean cross-entropy on the words cut from the encoder (trains
        the probes only); confusion: the mean cross-entropy of their predictions against the
        uniform distribution, with the probes' weights held fixed (trains the encoder only).
        """
        probe, confusion = [], []
        for factor, x, labels in self._readings(words, scenes):
            head = self.heads[factor]
            x = _standardised(x)
            probe.append(F.cross_entropy(head(x.detach()), labels))
            log_p = F.log_softmax(F.linear(x, head.weight.detach(), head.bias.detach()), dim=-1)
            confusion.append(-log_p.mean(dim=-1).mean())
        return torch.stack(probe).mean(), torch.stack(confusion).mean()
