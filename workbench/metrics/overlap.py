"""Overlap between heat maps, and between heat maps and masks (pure functions).

Maps are non-negative arrays (..., y, x), numpy or torch; pairwise scores broadcast over the
leading dimensions and return a float for single 2-D maps, else an array.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence, Union

import numpy as np

if TYPE_CHECKING:  # metrics never import torch: a tensor is read through its own methods
    import torch

ArrayLike = Union[np.ndarray, "torch.Tensor"]
EPS = 1e-12


def _numpy(x: ArrayLike) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, on any device and in any dtype
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def check_map(name: str, a: ArrayLike) -> np.ndarray:
    """`a` as float64, checked: at least 2-D, finite, non-negative.

    Raises:
        ValueError: naming `name` and what was expected.
    """
    a = _numpy(a)
    if a.ndim < 2 or 0 in a.shape:
        raise ValueError(f"{name} must be a non-empty map of shape (..., y, x), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf; expected finite values")
    if (a < 0).any():
        raise ValueError(f"{name} has negative values (min {a.min():.3g}); expected a non-negative map")
    return a


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = check_map("a", a), check_map("b", b)
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"maps a and b differ in spatial shape: {a.shape[-2:]} vs {b.shape[-2:]}")
    return a, b


def _out(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


def _sum(x: np.ndarray) -> np.ndarray:
    return x.sum(axis=(-2, -1))


def minmax_normalize(heat_map: ArrayLike) -> np.ndarray:
    """Rescale each map (..., y, x) to [0, 1]: (a - min) / (max - min); a constant map -> 0."""
    a = _numpy(heat_map)
    low = a.min(axis=(-2, -1), keepdims=True)
    span = a.max(axis=(-2, -1), keepdims=True) - low
    return np.where(span > EPS, (a - low) / np.maximum(span, EPS), 0.0)


def to_distribution(heat_map: ArrayLike, eps: float = 1e-8) -> np.ndarray:
    """Normalise each map to sum to one, after adding `eps` everywhere (no zero cells)."""
    a = check_map("heat_map", heat_map) + eps
    return a / _sum(a)[..., None, None]


def iou(a: ArrayLike, b: ArrayLike) -> float:
    """Intersection over union of two boolean masks of one shape (two empty masks -> 1.0)."""
    a, b = np.asarray(_numpy(a), bool), np.asarray(_numpy(b), bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def thresholded_iou(a: ArrayLike, b: ArrayLike, tau: float = 0.4) -> float:
    """DAAM's IoU: each heat map min-max normalised and thresholded at `tau`; a boolean mask is
    used as it is. With a heat map and a region's mask this is DAAM's localisation score; with
    two heat maps, how much their thresholded areas overlap.

    Source: Tang et al., "What the DAAM", ACL 2023 (threshold 0.4 on normalised maps).
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must lie in [0, 1], got {tau}")

    def region(x: ArrayLike, name: str) -> np.ndarray:
        if str(getattr(x, "dtype", "")) in ("bool", "torch.bool"):  # a mask (numpy or torch)
            return np.asarray(_numpy(x), bool)
        return minmax_normalize(check_map(name, x)) >= tau

    return iou(region(a, "a"), region(b, "b"))


def soft_iou(a: ArrayLike, b: ArrayLike) -> float | np.ndarray:
    """DisenDiff's soft IoU on min-max normalised maps: (sum ab + 1) / (sum a + sum b - sum ab + 1).

    Source: Zhang et al., "Attention Calibration for Disentangled Text-to-Image
    Personalization" (DisenDiff), CVPR 2024; the +1 smooths empty maps.
    """
    a, b = _pair(a, b)
    a, b = minmax_normalize(a), minmax_normalize(b)
    inter = _sum(a * b)
    return _out((inter + 1) / (_sum(a) + _sum(b) - inter + 1))


def distribution_overlap(a: ArrayLike, b: ArrayLike) -> float | np.ndarray:
    """The shared mass of two maps as distributions over positions: sum min(p, q), p and q the
    maps divided by their sums; 1 for maps equal up to scale, 0 for disjoint ones (it is one
    minus their total variation distance).
    """
    a, b = _pair(a, b)
    return _out(_sum(np.minimum(to_distribution(a), to_distribution(b))))


def dice(a: ArrayLike, b: ArrayLike) -> float | np.ndarray:
    """Soft Dice on min-max normalised maps: 2 sum ab / (sum a + sum b) (two empty maps -> 1)."""
    a, b = _pair(a, b)
    a, b = minmax_normalize(a), minmax_normalize(b)
    total = _sum(a) + _sum(b)
    return _out(np.where(total > EPS, 2 * _sum(a * b) / np.maximum(total, EPS), 1.0))


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return _sum(p * np.log(p / q))


def symmetric_kl(a: ArrayLike, b: ArrayLike, eps: float = 1e-8) -> float | np.ndarray:
    """KL(p || q) + KL(q || p) in nats, p and q the maps as distributions (see to_distribution)."""
    a, b = _pair(a, b)
    p, q = to_distribution(a, eps), to_distribution(b, eps)
    return _out(_kl(p, q) + _kl(q, p))


def js_divergence(a: ArrayLike, b: ArrayLike, eps: float = 1e-8) -> float | np.ndarray:
    """Jensen-Shannon divergence in nats: (KL(p || m) + KL(q || m)) / 2, m = (p + q) / 2; in [0, ln 2]."""
    a, b = _pair(a, b)
    p, q = to_distribution(a, eps), to_distribution(b, eps)
    m = (p + q) / 2
    return _out((_kl(p, m) + _kl(q, m)) / 2)


def histogram_intersection(a: ArrayLike, b: ArrayLike, eps: float = 1e-8) -> float | np.ndarray:
    """INITNO's overlap: sum min(a, b) / (sum (a + b) + eps), on the raw maps; in [0, 0.5].

    Source: Guo et al., "InitNO: Boosting Text-to-Image Diffusion Models via Initial Noise
    Optimization", CVPR 2024.
    """
    a, b = _pair(a, b)
    return _out(_sum(np.minimum(a, b)) / (_sum(a + b) + eps))


def mass_inside(heat_map: ArrayLike, mask: ArrayLike) -> float | np.ndarray:
    """Fraction of a map's attention mass inside `mask` (TokenCompose's token loss term).

    The outside fraction is 1 - mass_inside. A map with no mass gives 0.
    """
    a = check_map("heat_map", heat_map)
    m = np.asarray(_numpy(mask), bool)
    if m.shape[-2:] != a.shape[-2:]:
        raise ValueError(f"mask's spatial shape {m.shape[-2:]} differs from heat_map's {a.shape[-2:]}")
    total = _sum(a)
    return _out(np.where(total > EPS, _sum(a * m) / np.maximum(total, EPS), 0.0))


def mass_moved(before: ArrayLike, after: ArrayLike, regions: ArrayLike) -> float:
    """How much of a word's attention mass moved between regions from one heat map to another:
    half the summed absolute change of its share on each region (the total variation between
    the two distributions over regions); 0 when nothing moved, 1 when it all moved, when the
    regions tile the image.

    Args:
        before, after: (y, x) heat maps of the same word (e.g. base model and fine-tune).
        regions: boolean (regions, y, x) masks.
    """
    masks = np.asarray(_numpy(regions), bool)
    if masks.ndim != 3:
        raise ValueError(f"regions must be boolean masks (regions, y, x), got shape {masks.shape}")
    shares = [np.array([mass_inside(m, mask) for mask in masks]) for m in (before, after)]
    return float(0.5 * np.abs(shares[0] - shares[1]).sum())


def leakage_matrix(heat_maps: ArrayLike, regions: ArrayLike) -> np.ndarray:
    """Fraction of each word's attention mass on each region.

    Args:
        heat_maps: (words, y, x) for one image, or (images, words, y, x).
        regions: boolean (regions, y, x) or (images, regions, y, x), e.g. each object's mask
            and the background.

    Returns:
        (words, regions); averaged over images when given a batch. Rows sum to the fraction
        of mass the regions cover (1 when they tile the image).
    """
    maps = check_map("heat_maps", heat_maps)
    masks = np.asarray(_numpy(regions), bool)
    if maps.ndim == 3:
        maps, masks = maps[None], masks[None] if masks.ndim == 3 else masks
    if maps.ndim != 4 or masks.ndim != 4 or maps.shape[0] != masks.shape[0] or maps.shape[-2:] != masks.shape[-2:]:
        raise ValueError(
            f"heat_maps (images, words, y, x) and regions (images, regions, y, x) must agree in images and "
            f"spatial shape; got {maps.shape} and {masks.shape}"
        )
    total = np.maximum(_sum(maps), EPS)[:, :, None]  # (images, words, 1)
    inside = np.einsum("nwyx,nryx->nwr", maps, masks.astype(np.float64))
    return (inside / total).mean(axis=0)


def overlap_matrix(heat_maps: ArrayLike | Sequence[ArrayLike], metric: Callable = soft_iou) -> np.ndarray:
    """`metric` between every pair of maps (words, y, x) -> (words, words) in one call."""
    maps = check_map("heat_maps", np.stack([_numpy(m) for m in heat_maps]) if isinstance(heat_maps, (list, tuple)) else heat_maps)
    if maps.ndim != 3:
        raise ValueError(f"heat_maps must be (words, y, x), got shape {maps.shape}")
    n = len(maps)
    out = np.empty((n, n))
    for i in range(n):
        out[i] = metric(np.broadcast_to(maps[i], maps.shape), maps)
    return out
