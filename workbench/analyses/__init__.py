"""Analyses: capture + metrics over a model, returning typed, tidy results."""

from .attention import AttentionAnalysis, analyse_attention, finest_layers
from .primary_auxiliary import WordComparison, compare_words, words_of

__all__ = ["AttentionAnalysis", "WordComparison", "analyse_attention", "compare_words", "finest_layers", "words_of"]
