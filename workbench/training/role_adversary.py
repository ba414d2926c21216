"""An adversary for the word encoder's roles: linear probes that try to read from each word
what it should not carry, trained against the encoder through a reversed gradient (Ganin and
Lempitsky's domain-adversarial training).

The auxiliary words w1..wk should not tell the object's shape, colour or size; the primary word
w0 should not tell the background. The probes learn to read them (their own gradient); the
encoder receives the probes' gradient negated and scaled, so it learns to hide those factors.
Split-role training alone (word_roles) only makes each side sufficient for its part; it does
not stop a word from also carrying the other part, which is what the probe-leakage matrix
measured (benchmarks/primary_vs_auxiliary.py).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..world.scenes import Scene
from ..world.vocabulary import FACTOR_VALUES

OBJECT_FACTORS: tuple[str, ...] = ("shape", "color", "size")


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient flowing back is multiplied by -scale."""
    return _ReverseGradient.apply(x, scale)


class RoleAdversary(nn.Module):
    """Linear probes: object factors from each auxiliary word (one head per factor, shared by
    the auxiliary words), the background from the primary word."""

    def __init__(self, width: int):
        super().__init__()
        self.object_heads = nn.ModuleDict({f: nn.Linear(width, len(FACTOR_VALUES[f])) for f in OBJECT_FACTORS})
        self.background_head = nn.Linear(width, len(FACTOR_VALUES["background"]))

    def loss(self, words: torch.Tensor, scenes: Sequence[Scene], scale: float) -> torch.Tensor:
        """Mean cross-entropy of the probes on words (batch, n_words, width) of one-object scenes.

        Minimising it trains the probes; the encoder upstream sees its gradient times -scale.
        """
        if words.shape[1] < 2:
            raise ValueError(f"the adversary needs a primary and at least one auxiliary word, got {words.shape[1]} word(s)")
        words = reverse_gradient(words, scale)
        auxiliary = words[:, 1:]  # (batch, k, width)
        losses = []
        for factor, head in self.object_heads.items():
            labels = torch.tensor([FACTOR_VALUES[factor].index(getattr(s.objects[0], factor)) for s in scenes])
            logits = head(auxiliary)  # (batch, k, classes)
            losses.append(F.cross_entropy(logits.flatten(0, 1), labels.repeat_interleave(auxiliary.shape[1])))
        backgrounds = torch.tensor([FACTOR_VALUES["background"].index(s.background) for s in scenes])
        losses.append(F.cross_entropy(self.background_head(words[:, 0]), backgrounds))
        return torch.stack(losses).mean()
