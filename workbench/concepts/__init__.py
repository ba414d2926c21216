"""Concepts: activation vectors (CAVs) and TCAV scores with significance tests."""

from .cav import CAV
from .concept_sets import ConceptSet, concept_activations, from_query, random_sets
from .run import run_tcav
from .targets import classifier_logit, layer_gradients
from .tcav import TCAVResult, directional_derivatives, magnitude_score, sign_count_score, tcav

__all__ = [
    "CAV",
    "ConceptSet",
    "TCAVResult",
    "classifier_logit",
    "concept_activations",
    "directional_derivatives",
    "from_query",
    "layer_gradients",
    "magnitude_score",
    "random_sets",
    "run_tcav",
    "sign_count_score",
    "tcav",
]
