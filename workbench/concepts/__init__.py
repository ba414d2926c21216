"""Concepts: activation vectors (CAVs) and TCAV scores with significance tests."""

from .cav import CAV, fit_cavs, labelled
from .concept_sets import ConceptSet, concept_activations, layer_activations, sets_from_pool
from .pipeline_io import encode_prompts
from .run import run_tcav, run_tcav_results
from .targets import LayerReadout, TargetModel, classifier_logit, classifier_logits, gradients_at, layer_gradients
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
    "LayerReadout",
    "TCAVResult",
    "TargetModel",
    "classifier_logit",
    "classifier_logits",
    "concept_activations",
    "directional_derivatives",
    "encode_prompts",
    "fit_cavs",
    "gradients_at",
    "labelled",
    "layer_activations",
    "layer_gradients",
    "magnitude_score",
    "results_frame",
    "run_tcav",
    "run_tcav_results",
    "sets_from_pool",
    "sign_count_score",
    "tcav",
    "tcav_results",
]
