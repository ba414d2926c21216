"""Concepts: activation vectors (CAVs) and TCAV scores with significance tests."""

from .cav import CAV, fit_cavs
from .concept_sets import ConceptSet, concept_activations, from_query, layer_activations, random_sets
from .run import run_tcav, run_tcav_results
from .targets import TargetModel, classifier_logit, gradients_at, layer_gradients
from .tcav import (
    TCAVResult,
    directional_derivatives,
    magnitude_score,
    results_frame,
    sign_count_score,
    tcav,
    tcav_results,
)

__all__ = [
    "CAV",
    "ConceptSet",
    "TCAVResult",
    "TargetModel",
    "classifier_logit",
    "concept_activations",
    "directional_derivatives",
    "fit_cavs",
    "from_query",
    "gradients_at",
    "layer_activations",
    "layer_gradients",
    "magnitude_score",
    "random_sets",
    "results_frame",
    "run_tcav",
    "run_tcav_results",
    "sign_count_score",
    "tcav",
    "tcav_results",
]
