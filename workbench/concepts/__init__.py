"""Concepts: activation vectors (CAVs) and TCAV scores with significance tests."""

from .cav import CAV
from .targets import classifier_logit, layer_gradients
from .tcav import TCAVResult, directional_derivatives, magnitude_score, sign_count_score, tcav

__all__ = [
    "CAV",
    "TCAVResult",
    "classifier_logit",
    "directional_derivatives",
    "layer_gradients",
    "magnitude_score",
    "sign_count_score",
    "tcav",
]
