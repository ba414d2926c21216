"""Pure metric functions: numpy or torch in, numbers or arrays out; no model is loaded here."""

from .overlap import (
    dice,
    histogram_intersection,
    iou,
    js_divergence,
    leakage_matrix,
    mass_inside,
    minmax_normalize,
    overlap_matrix,
    soft_iou,
    symmetric_kl,
    threshold_iou,
    thresholded_iou,
    to_distribution,
)

__all__ = [
    "dice",
    "histogram_intersection",
    "iou",
    "js_divergence",
    "leakage_matrix",
    "mass_inside",
    "minmax_normalize",
    "overlap_matrix",
    "soft_iou",
    "symmetric_kl",
    "threshold_iou",
    "thresholded_iou",
    "to_distribution",
]
