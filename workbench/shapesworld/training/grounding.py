"""Token grounding for diffusion training (TokenCompose, Wang et al., 2024).

Each object word's cross-attention is pulled onto its own object's mask and the background
word's onto the background. Why: the wider embedded model drew well but its words hardly
localised (DAAM mIoU colour 0.31, shape 0.18, background 0.15), so leakage could not stand out
in the tutorials; ShapesWorld's exact masks say where each word belongs.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from workbench.capture.processor import spatial_shape

from ..captions import word_roles
from ..scenes import Scene


def grounding_targets(scenes: Sequence[Scene], captions: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each caption token belongs, for the word-level tokenizer (token = word index + 1,
    after the start token).

    Args:
        scenes: the batch's scenes.
        captions: their captions as trained on ("" where dropped: nothing is grounded).
        max_length: the tokenizer's padded length.

    Returns:
        masks: float (batch, max_length, y, x), the region each token belongs to;
        grounded: bool (batch, max_length), which tokens have a region (size, colour and shape
        words: their object; the background's colour word, e.g. "gray": the background; the
        word "background" itself and the grammar words have none).
    """
    if len(scenes) != len(captions):
        raise ValueError(f"got {len(scenes)} scenes but {len(captions)} captions")
    size = scenes[0].image_size
    masks = torch.zeros(len(scenes), max_length, size, size)
    grounded = torch.zeros(len(scenes), max_length, dtype=torch.bool)
    for row, (scene, caption) in enumerate(zip(scenes, captions)):
        for index, named in enumerate(word_roles(caption)[: max_length - 2] if caption else []):
            if named is not None:
                region = scene.background_mask if named.obj is None else scene.object_masks[named.obj]
                masks[row, index + 1] = torch.from_numpy(region.astype("float32"))
                grounded[row, index + 1] = True
    return masks, grounded


def grounding_loss(probabilities: Sequence[torch.Tensor], masks: torch.Tensor, grounded: torch.Tensor) -> torch.Tensor:
    """Mean over layers and grounded tokens of (1 - share of the token's attention in its region)^2.

    Args:
        probabilities: per cross-attention layer, (batch, heads, queries, keys); heads are averaged.
        masks, grounded: from `grounding_targets`; masks are area-averaged to each layer's grid.

    Returns:
        A scalar (0 if nothing is grounded).
    """
    if not grounded.any() or not probabilities:
        return masks.new_zeros(())
    image_hw = tuple(masks.shape[-2:])
    losses = []
    for layer in probabilities:
        attention = layer.mean(dim=1)  # (batch, queries, keys)
        grid = spatial_shape(image_hw, attention.shape[1])
        region = F.adaptive_avg_pool2d(masks, grid).flatten(2)  # (batch, keys, queries)
        inside = torch.einsum("bqk,bkq->bk", attention, region)
        share = inside / attention.sum(dim=1).clamp_min(1e-8)
        losses.append(((1 - share) ** 2)[grounded].mean())
    return torch.stack(losses).mean()
