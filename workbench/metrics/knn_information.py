"""Mutual information between a continuous code and a discrete factor, k-NN estimator (Ross 2014).

The same estimator as scikit-learn's `mutual_info_classif(..., discrete_features=False)` —
the same scaling, jitter and counting — computed for one-dimensional codes by sorting instead
of tree queries, which makes it tens of times faster (InfoMEC calls it for every pair of code
and factor).

    I = psi(N) + <psi(k)> - <psi(N_label)> - <psi(m)>

with, per sample, k neighbours of its own label inside radius r (just under the distance to
the k-th), and m the samples of any label within r.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma


def _kth_neighbour_distance(sorted_values: np.ndarray, k: int) -> np.ndarray:
    """Distance from each element of a sorted 1-D array to its k-th nearest other element."""
    n = len(sorted_values)
    padded = np.concatenate([np.full(k, -np.inf), sorted_values, np.full(k, np.inf)])
    centre = np.arange(n) + k
    best = np.full(n, np.inf)
    for left in range(k + 1):  # take `left` neighbours from the left, k - left from the right
        reach_left = sorted_values - padded[centre - left] if left else np.zeros(n)
        reach_right = padded[centre + k - left] - sorted_values if k - left else np.zeros(n)
        best = np.minimum(best, np.maximum(reach_left, reach_right))
    return best


def _count_within(sorted_values: np.ndarray, centres: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """For each centre, how many values v satisfy |v - centre| <= radius (exactly)."""
    lo = np.searchsorted(sorted_values, centres - radius, side="left")
    hi = np.searchsorted(sorted_values, centres + radius, side="right")
    n = len(sorted_values)
    # c - r and c + r are rounded: settle the edges with the exact test
    for _ in range(2):
        step = (lo > 0) & (np.abs(sorted_values[np.maximum(lo - 1, 0)] - centres) <= radius)
        lo = lo - step
        step = (lo < hi) & (np.abs(sorted_values[np.minimum(lo, n - 1)] - centres) > radius)
        lo = lo + step
        step = (hi < n) & (np.abs(sorted_values[np.minimum(hi, n - 1)] - centres) <= radius)
        hi = hi + step
        step = (hi > lo) & (np.abs(sorted_values[np.maximum(hi - 1, 0)] - centres) > radius)
        hi = hi - step
    return hi - lo


def mutual_information_cd(code: np.ndarray, labels: np.ndarray, n_neighbors: int = 3) -> float:
    """Ross's estimator for one continuous code (already scaled and jittered) and labels."""
    n = len(code)
    radius = np.zeros(n)
    label_counts = np.zeros(n)
    k_all = np.zeros(n)
    for label in np.unique(labels):
        index = np.flatnonzero(labels == label)
        count = len(index)
        if count > 1:
            k = min(n_neighbors, count - 1)
            order = np.argsort(code[index], kind="stable")
            distance = np.empty(count)
            distance[order] = _kth_neighbour_distance(code[index][order], k)
            radius[index] = np.nextafter(distance, 0)
            k_all[index] = k
        label_counts[index] = count
    keep = label_counts > 1
    values = code[keep]
    m_all = _count_within(np.sort(values), values, radius[keep])
    mi = digamma(keep.sum()) + np.mean(digamma(k_all[keep])) - np.mean(digamma(label_counts[keep])) - np.mean(digamma(m_all))
    return max(0.0, float(mi))


def knn_mutual_information(codes: np.ndarray, labels: np.ndarray, n_neighbors: int = 3, seed: int = 0) -> np.ndarray:
    """(n_codes,) MI in nats between each continuous code column and discrete labels.

    Matches sklearn.feature_selection.mutual_info_classif(codes, labels, discrete_features=False,
    n_neighbors=n_neighbors, random_state=seed): codes scaled to unit standard deviation, then
    jittered by 1e-10 * max(1, mean |code|) standard normal noise.
    """
    x = np.array(codes, dtype=np.float64, copy=True)
    std = x.std(axis=0)
    x /= np.where(std == 0, 1.0, std)
    rng = np.random.RandomState(seed)
    x += 1e-10 * np.maximum(1, np.mean(np.abs(x), axis=0)) * rng.standard_normal(size=x.shape)
    return np.array([mutual_information_cd(x[:, j], np.asarray(labels), n_neighbors) for j in range(x.shape[1])])
