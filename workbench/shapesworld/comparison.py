"""ShapesWorld as the input of the primary-versus-auxiliary comparison: its scenes' images,
their factor labels, and the drawn object found in each generated image by colour."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .scenes import Scene, scenes_to_tensor
from .segmentation import BACKGROUND_LABEL, segment_by_palette

POSITION_BINS = 3  # x and y become left/centre/right and top/middle/bottom for probing


def scene_factors(scenes: Sequence[Scene]) -> pd.DataFrame:
    """Factor labels of one-object scenes, positions binned, one row per image.

    Raises:
        ValueError: a scene with more than one object.
    """
    rows = []
    for scene in scenes:
        if len(scene.objects) != 1:
            raise ValueError("the primary/auxiliary comparison expects one-object scenes")
        obj = scene.objects[0]
        cell = scene.image_size / POSITION_BINS
        rows.append({"shape": obj.shape, "color": obj.color, "size": obj.size, "background": scene.background,
                     "x": int(obj.x // cell), "y": int(obj.y // cell)})
    return pd.DataFrame(rows)


def drawn_object(index: int, image: np.ndarray) -> np.ndarray:
    """The pixels of a generated image that are not background (the drawn object), (y, x)."""
    return segment_by_palette(image) != BACKGROUND_LABEL


def comparison_inputs(scenes: Sequence[Scene]) -> dict[str, Any]:
    """images, labels and object_masks for `compare_words` from one-object scenes."""
    return {"images": (scenes_to_tensor(scenes) + 1) / 2, "labels": scene_factors(scenes), "object_masks": drawn_object}
