"""Overlap between heat maps and masks (pure functions: arrays in, numbers out)."""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _numpy(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def minmax_normalize(heat_map: ArrayLike, eps: float = 1e-12) -> np.ndarray:
    """Rescale a map (..., y, x) to [0, 1] per map: (a - min) / (max - min); a constant map -> 0."""
    a = _numpy(heat_map).astype(np.float64)
    low = a.min(axis=(-2, -1), keepdims=True)
    span = a.max(axis=(-2, -1), keepdims=True) - low
    return np.where(span > eps, (a - low) / np.maximum(span, eps), 0.0)


def iou(a: ArrayLike, b: ArrayLike) -> float:
    """Intersection over union of two boolean masks of one shape (two empty masks -> 1.0)."""
    a, b = _numpy(a).astype(bool), _numpy(b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def threshold_iou(heat_map: ArrayLike, mask: ArrayLike, tau: float = 0.4) -> float:
    """DAAM's localisation score: IoU of (min-max normalised heat map >= tau) with `mask`.

    Source: Tang et al., "What the DAAM", ACL 2023 (threshold 0.4 on normalised maps).
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must lie in [0, 1], got {tau}")
    return iou(minmax_normalize(heat_map) >= tau, mask)
