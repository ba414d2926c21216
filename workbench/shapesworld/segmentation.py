"""Exact colour segmentation against the known palette.

Backgrounds are achromatic and object colours saturated, so a pixel's saturation separates
object from background and its nearest palette colour names the object's colour. This works
on generated images too, which are close to but never exactly the palette.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from .vocabulary import COLORS

BACKGROUND_LABEL = -1
# max(R,G,B) - min(R,G,B) below this (0..255 scale) is background; every palette colour is >= 130.
SATURATION_THRESHOLD = 60
# A colour counts as drawn when it covers at least this many pixels (a small object has ~50).
MIN_PIXELS = 12


def _as_uint8(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (y, x, 3), got shape {image.shape}")
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(np.rint(image * 255), 0, 255).astype(np.int32)
    return image.astype(np.int32)


def segment_by_palette(image: np.ndarray) -> np.ndarray:
    """Label each pixel with the index of its palette colour in COLORS, or -1 for background.

    Args:
        image: (y, x, 3), uint8 in 0..255 or float in [0, 1].

    Returns:
        int (y, x) label map.
    """
    pixels = _as_uint8(image)
    saturation = pixels.max(-1) - pixels.min(-1)
    palette = np.asarray(list(COLORS.values()), dtype=np.int32)
    distance = ((pixels[:, :, None, :] - palette[None, None]) ** 2).sum(-1)
    labels = distance.argmin(-1)
    return np.where(saturation >= SATURATION_THRESHOLD, labels, BACKGROUND_LABEL)


def color_areas(labels: np.ndarray) -> dict[str, int]:
    """Pixel count of each palette colour in a label map."""
    return {name: int((labels == i).sum()) for i, name in enumerate(COLORS)}


def color_regions(labels: np.ndarray, color: str, count: int) -> list[np.ndarray]:
    """Up to `count` masks of `color`: the whole colour if count is 1, else its largest blobs."""
    mask = labels == list(COLORS).index(color)
    if count == 1 or not mask.any():
        return [mask]
    components, n = ndimage.label(mask)
    sizes = ndimage.sum(mask, components, range(1, n + 1))
    order = np.argsort(sizes)[::-1][:count]
    return [components == (i + 1) for i in order]


def object_masks_by_color(labels: np.ndarray, colors: Sequence[str]) -> list[np.ndarray | None]:
    """The region of each object a caption names, found by its colour in a label map.

    A colour counts as drawn if it is among the len(colors) largest colours and covers at least
    MIN_PIXELS; objects sharing a colour get its largest blobs. None where not drawn.
    """
    areas = color_areas(labels)
    ranked = [c for c, a in sorted(areas.items(), key=lambda kv: -kv[1]) if a >= MIN_PIXELS]
    drawn = set(ranked[: len(colors)])
    masks: list[np.ndarray | None] = [None] * len(colors)
    for color in set(colors):
        indices = [i for i, c in enumerate(colors) if c == color]
        if color not in drawn:
            continue
        regions = color_regions(labels, color, len(indices))
        for i, region in zip(indices, regions):
            masks[i] = region if region.sum() >= MIN_PIXELS // len(indices) else None
    return masks


def color_present(color: str, min_pixels: int = MIN_PIXELS):
    """A detector for `analyses.presence`: images (n, y, x, 3) -> (n,) bools, whether `color`
    covers at least `min_pixels` pixels (exact palette segmentation).

    Raises:
        ValueError: a colour not in the palette (lists the palette).
    """
    if color not in COLORS:
        raise ValueError(f"{color!r} is not a ShapesWorld colour; the palette: {', '.join(COLORS)}")
    index = list(COLORS).index(color)
    return lambda images: np.array([(segment_by_palette(image) == index).sum() >= min_pixels for image in np.asarray(images)])
