"""Pure metric functions: numpy or torch in, numbers or arrays out; no model is loaded here."""

from .overlap import iou, minmax_normalize, threshold_iou

__all__ = ["iou", "minmax_normalize", "threshold_iou"]
