"""Attribute binding for diffusion training: tell a caption from its shape-swapped twin.

The embedded model drew the right two shapes and colours in two-object scenes and then gave
each colour either shape about equally often, and its noise prediction barely changed when
the caption's two shapes were exchanged (README, Measurements): the denoising loss pays too
little for binding to be learned. This loss asks for it directly, as a two-way diffusion
classifier (Li et al., 2023): on the same noisy image, the true caption's noise-prediction
error should be lower than the swapped caption's, scored as the cross-entropy of a softmax
over the two negated errors, each divided by `temperature` times the true caption's error
(so the loss reads relative differences and is the same at every noise level).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch
import torch.nn.functional as F

from ..world.captions import CaptionFactors, make_caption, parse_caption

# The caption decides an object's shape at the noisier half of the steps (from t = 550 of
# 1,000; a wrong shape word doubles the loss at t = 400-800); nearer the clean image neither
# caption changes the prediction, and dividing by the tiny errors there would amplify noise.
MIN_TIMESTEP = 300


def swapped_caption(caption: str) -> str | None:
    """The caption with its two objects' shapes exchanged, or None where that changes nothing
    (no caption, one object, or two objects of one shape or of one colour)."""
    if not caption:
        return None
    factors = parse_caption(caption)
    if len(factors.objects) != 2:
        return None
    first, second = factors.objects
    if first.shape == second.shape or first.color == second.color:
        return None
    objects = (replace(first, shape=second.shape), replace(second, shape=first.shape))
    return make_caption(CaptionFactors(objects, factors.background))


def binding_loss(
    predicted: torch.Tensor, predicted_swapped: torch.Tensor, noise: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Mean over samples of softplus((e_true - e_swapped) / (temperature * e_true)).

    Args:
        predicted: (n, c, y, x) noise predicted from the true captions.
        predicted_swapped: the same noisy images' noise predicted from the swapped captions.
        noise: the noise that was added.
        temperature: > 0; smaller asks for a larger relative gap.

    Returns:
        A scalar: log 2 where both captions predict equally well, towards 0 as the swapped
        caption's error grows beyond the true one's.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    true_error = F.mse_loss(predicted, noise, reduction="none").mean(dim=(1, 2, 3))
    swapped_error = F.mse_loss(predicted_swapped, noise, reduction="none").mean(dim=(1, 2, 3))
    scale = temperature * true_error.detach().clamp_min(1e-8)
    return F.softplus((true_error - swapped_error) / scale).mean()


def binding_pairs(captions: Sequence[str], timesteps: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """Which samples take part (a swapped caption exists and t >= MIN_TIMESTEP) and their
    swapped captions, in order."""
    swapped = [swapped_caption(c) for c in captions]
    chosen = [i for i, s in enumerate(swapped) if s is not None and int(timesteps[i]) >= MIN_TIMESTEP]
    return torch.tensor(chosen, dtype=torch.long), [swapped[i] for i in chosen]
