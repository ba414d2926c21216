"""Concepts: activation vectors (CAVs) and TCAV scores with significance tests."""

from .cav import CAV, fit_cavs, labelled
from .concept_sets import ConceptSet, concept_activations, layer_activations, sets_from_pool
from .pipeline_io import encode_prompts
from .run import run_tcav
from .targets import LayerReadout, TargetModel, classifier_logit, classifier_logits, gradients_at, layer_gradients
from .tcav import (
    TCAVReport,
    TCAVResult,
    directional_derivatives,
    magnitude_score,
    sign_count_score,
    tcav,
)

__all__ = [
    "CAV",
    "ConceptSet",
    "LayerReadout",
    "TCAVReport",
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
    "run_tcav",
    "sets_from_pool",
    "sign_count_score",
    "tcav",
]
