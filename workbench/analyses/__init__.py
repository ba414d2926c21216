"""Analyses: capture + metrics over a model, returning typed, tidy results."""

from .attention import AttentionAnalysis, analyse_attention, finest_layers
from .erasure import ErasureAudit, audit_erasure, concept_direction, erasure_verdicts, steered
from .word_search import search_word
from .model_diff import ModelDiff, compare_concepts, compare_models, presence
from .primary_auxiliary import WordComparison, compare_words, words_of

__all__ = ["AttentionAnalysis", "ModelDiff", "WordComparison", "analyse_attention", "compare_concepts", "compare_models", "compare_words",
           "ErasureAudit", "audit_erasure", "concept_direction", "erasure_verdicts", "finest_layers", "presence", "search_word", "steered", "words_of"]
