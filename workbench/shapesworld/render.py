"""Pixel-exact drawing of shapes and backgrounds.

A pixel belongs to a shape when its centre lies inside the shape; there is no anti-aliasing,
so the masks are exactly the pixels that carry the object's colour.
"""

from __future__ import annotations

import numpy as np

from .vocabulary import BACKGROUNDS, COLORS, SHAPES, STRIPE_PERIOD


def shape_mask(shape: str, x: float, y: float, radius: float, size: int) -> np.ndarray:
    """Boolean (size, size) mask of `shape` centred at pixel coordinates (x, y).

    Raises:
        ValueError: if `shape` is not one of SHAPES.
    """
    centres = np.arange(size) + 0.5
    dx = centres[None, :] - x
    dy = centres[:, None] - y
    r = radius
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        half = 0.7 * r  # corners stay inside the bounding circle
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if shape == "triangle":
        # Upright isosceles triangle, apex at the top; all three corners on the bounding circle.
        top, bottom = -r, 0.6 * r
        inside_rows = (dy >= top) & (dy <= bottom)
        half_width = (dy - top) / (bottom - top) * 0.8 * r
        return inside_rows & (np.abs(dx) <= half_width)
    if shape == "cross":
        arm, reach = r / 3.0, 0.94 * r  # arm ends stay inside the bounding circle
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= reach)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= reach))
    raise ValueError(f"unknown shape {shape!r}; expected one of {list(SHAPES)}")


def background_image(background: str, size: int) -> np.ndarray:
    """The (size, size, 3) uint8 background before any object is drawn.

    Raises:
        ValueError: if `background` is not one of BACKGROUNDS.
    """
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; expected one of {list(BACKGROUNDS)}")
    levels = BACKGROUNDS[background]
    rows = np.arange(size)
    band = (rows // max(STRIPE_PERIOD // 2, 1)) % len(levels)
    grey = np.asarray(levels, dtype=np.uint8)[band]
    return np.broadcast_to(grey[:, None, None], (size, size, 3)).copy()


def paint(image: np.ndarray, mask: np.ndarray, color: str) -> None:
    """Fill `mask` of `image` (in place) with the palette colour `color`."""
    if color not in COLORS:
        raise ValueError(f"unknown color {color!r}; expected one of {list(COLORS)}")
    image[mask] = COLORS[color]
