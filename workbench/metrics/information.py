"""Discretisation and discrete mutual information, as disentanglement_lib computes them.

Arrays are samples-first: codes (n_samples, n_codes), factors (n_samples, n_factors). MI is
in nats (sklearn.metrics.mutual_info_score).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mutual_info_score

from .validation import as_matrix


def histogram_discretize(codes, num_bins: int = 20) -> np.ndarray:
    """Bin each code into 1..num_bins by its own equal-width histogram.

    Reference: disentanglement_lib utils.histogram_discretize: `bins = numpy.histogram(code,
    num_bins)[1][:-1]` (the left edges), `labels = numpy.digitize(code, bins)`.
    """
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    c = as_matrix("codes", codes)
    out = np.empty(c.shape, dtype=np.int64)
    for j in range(c.shape[1]):
        edges = np.histogram(c[:, j], num_bins)[1][:-1]
        out[:, j] = np.digitize(c[:, j], edges)
    return out


def discrete_mutual_info(discrete_codes, factors) -> np.ndarray:
    """(n_codes, n_factors) mutual information in nats between discrete codes and factors."""
    c, f = as_matrix("codes", discrete_codes), as_matrix("factors", factors)
    if len(c) != len(f):
        raise ValueError(f"codes has {len(c)} samples but factors has {len(f)}; expected the same number")
    return np.array([[mutual_info_score(f[:, k], c[:, j]) for k in range(f.shape[1])] for j in range(c.shape[1])])


def discrete_entropy(factors) -> np.ndarray:
    """(n_factors,) entropy in nats of each discrete factor."""
    f = as_matrix("factors", factors)
    return np.array([mutual_info_score(f[:, k], f[:, k]) for k in range(f.shape[1])])
