"""Analyses: capture + metrics over a model, returning typed, tidy results."""

from .attention import AttentionAnalysis, analyse_attention, finest_layers
from .erasure import concept_direction, erasure_verdicts, steered
from .model_diff import ModelDiff, compare_concepts, compare_models, presence
from .primary_auxiliary import WordComparison, compare_words, words_of

__all__ = ["AttentionAnalysis", "ModelDiff", "WordComparison", "analyse_attention", "compare_concepts", "compare_models", "compare_words",
           "concept_direction", "erasure_verdicts", "finest_layers", "presence", "steered", "words_of"]
