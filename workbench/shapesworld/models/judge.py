"""Judge generated ShapesWorld images against their captions.

Colour is judged by exact palette segmentation; each object's region is the pixels of its
colour (the largest blobs when two objects share a colour), and the shipped classifier reads
that region's shape and size and the scene's background.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import permutations
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..captions import parse_caption
from ..segmentation import object_masks_by_color, segment_by_palette
from .classifier import ShapesClassifier

@dataclass(frozen=True)
class QualityReport:
    """Accuracies over judged images; binding is over two-object images only (NaN if none)."""

    color_accuracy: float
    shape_accuracy: float
    size_accuracy: float
    background_accuracy: float
    classifier_color_accuracy: float
    binding_accuracy: float
    n_images: int
    n_objects: int

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def judge_images(
    images: np.ndarray, captions: Sequence[str], classifier: ShapesClassifier
) -> tuple[QualityReport, pd.DataFrame]:
    """Score images against the captions they were generated from.

    Args:
        images: float (n, y, x, 3) in [0, 1].
        captions: n ShapesWorld captions.
        classifier: the ShapesWorld classifier.

    Returns:
        The summary report and a tidy frame with one row per caption object.

    Raises:
        ValueError: if images and captions differ in number; CaptionError for a bad caption.
    """
    if len(images) != len(captions):
        raise ValueError(f"got {len(images)} images but {len(captions)} captions")
    rows, batch_images, batch_masks = [], [], []
    for index, (image, caption) in enumerate(zip(images, captions)):
        factors = parse_caption(caption)
        masks = object_masks_by_color(segment_by_palette(image), [o.color for o in factors.objects])
        for number, (obj, mask) in enumerate(zip(factors.objects, masks)):
            rows.append(
                {"image": index, "object": number, "n_objects": len(factors.objects), "caption": caption,
                 "color": obj.color, "shape": obj.shape, "size": obj.size, "background": factors.background,
                 "color_correct": mask is not None}
            )
            batch_images.append(image)
            batch_masks.append(mask if mask is not None else np.ones(image.shape[:2], bool))
    frame = pd.DataFrame(rows)
    tensor = torch.from_numpy(np.stack(batch_images)).float().permute(0, 3, 1, 2)
    predictions = classifier(tensor, torch.from_numpy(np.stack(batch_masks)).float()).predictions(classifier.heads)
    for head in ("color", "shape", "size", "background"):
        frame[f"{head}_predicted"] = predictions[head]
    frame["shape_correct"] = frame.color_correct & (frame.shape_predicted == frame["shape"])
    frame["size_correct"] = frame.color_correct & (frame.size_predicted == frame["size"])
    frame["background_correct"] = frame.background_predicted == frame.background
    frame["classifier_color_correct"] = frame.color_predicted == frame.color
    _rescue_swapped_twins(frame)

    per_image = frame.groupby("image").agg(
        n=("n_objects", "first"), bound=("shape_correct", "all"), background=("background_correct", "first")
    )
    two = per_image[per_image.n == 2]
    report = QualityReport(
        color_accuracy=float(frame.color_correct.mean()),
        shape_accuracy=float(frame.shape_correct.mean()),
        size_accuracy=float(frame.size_correct.mean()),
        background_accuracy=float(per_image.background.mean()),
        classifier_color_accuracy=float(frame.classifier_color_correct.mean()),
        binding_accuracy=float(two.bound.mean()) if len(two) else float("nan"),
        n_images=len(per_image),
        n_objects=len(frame),
    )
    return report, frame


def _rescue_swapped_twins(frame: pd.DataFrame) -> None:
    """Two objects of one colour have no order on the image: accept either assignment of blobs."""
    for _, group in frame.groupby("image"):
        if len(group) != 2 or group.color.nunique() != 1:
            continue
        predicted = list(group.shape_predicted)
        wanted = list(group["shape"])
        best = max(permutations(range(2)), key=lambda p: sum(predicted[p[i]] == wanted[i] for i in range(2)))
        for position, i in enumerate(group.index):
            frame.loc[i, "shape_correct"] = bool(group.color_correct.iloc[position]) and predicted[best[position]] == wanted[position]
