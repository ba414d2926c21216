"""Analyses: capture + metrics over a model, returning typed, tidy results."""

from .primary_auxiliary import WordComparison, compare_words

__all__ = ["WordComparison", "compare_words"]
