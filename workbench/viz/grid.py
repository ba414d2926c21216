"""A picture grid for people: caption | ground truth | masks | generated, one row per scene."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Mask colours: background, then one per object in caption order.
MASK_COLORS = np.array([(40, 40, 40), (255, 160, 0), (0, 200, 255)], dtype=np.uint8)
HEADER = ("caption", "ground truth", "masks", "generated")


def mask_picture(object_masks: np.ndarray) -> np.ndarray:
    """uint8 (y, x, 3) picture of (n_objects, y, x) boolean masks; background dark grey."""
    labels = np.zeros(object_masks.shape[1:], dtype=int)
    for i, mask in enumerate(object_masks):
        labels[mask] = i + 1
    return MASK_COLORS[labels % len(MASK_COLORS)]


def scene_grid(
    captions: Sequence[str],
    images: Sequence[np.ndarray],
    object_masks: Sequence[np.ndarray],
    generated: Sequence[np.ndarray] | None = None,
    scale: int = 4,
    caption_width: int = 340,
) -> Image.Image:
    """Compose the grid.

    Args:
        captions: one caption per row.
        images: ground-truth uint8 (y, x, 3) images.
        object_masks: boolean (n_objects, y, x) per row.
        generated: optional uint8 (y, x, 3) generations for the same captions.
        scale: nearest-neighbour upscaling of the pictures.
    """
    if not (len(captions) == len(images) == len(object_masks)) or (generated is not None and len(generated) != len(captions)):
        raise ValueError("captions, images, masks (and generated) must have one entry per row")
    side = images[0].shape[0] * scale
    columns = 3 if generated is not None else 2
    pad, header = 6, 20
    width = caption_width + columns * (side + pad) + pad
    height = header + len(captions) * (side + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for c, title in enumerate(HEADER[: columns + 1]):
        x = pad if c == 0 else caption_width + (c - 1) * (side + pad) + pad
        draw.text((x, 4), title, fill="black", font=font)
    for r, caption in enumerate(captions):
        y = header + r * (side + pad) + pad
        draw.text((pad, y + side // 2 - 6), caption, fill="black", font=font)
        pictures = [images[r], mask_picture(object_masks[r])] + ([generated[r]] if generated is not None else [])
        for c, picture in enumerate(pictures):
            tile = Image.fromarray(np.asarray(picture, dtype=np.uint8)).resize((side, side), Image.NEAREST)
            canvas.paste(tile, (caption_width + c * (side + pad) + pad, y))
    return canvas
