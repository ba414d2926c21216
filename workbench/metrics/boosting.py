"""Histogram gradient boosting that mirrors scikit-learn's GradientBoostingClassifier, for fast DCI.

DCI's reference importance is `GradientBoostingClassifier().feature_importances_`: 100 stages,
learning rate 0.1, depth-3 regression trees fitted (friedman_mse) to the negative gradient of
the log loss, Newton-step leaf values, importance = total impurity decrease per code. This is
the same algorithm; the only change is where splits may fall: at most `max_bins` quantile
edges per code instead of every midpoint. That lets one `np.bincount` per tree level build the
split histograms of all nodes and all class trees of a stage at once, instead of sorting the
samples at every node, which is what makes the exact version slow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.special


@dataclass(frozen=True)
class BoostedTrees:
    """A fitted ensemble: split codes/bins per stage, tree and node, and the leaf values."""

    classes: np.ndarray  # (K,) labels
    edges: list[np.ndarray]  # per code, ascending bin edges
    features: np.ndarray  # (stages, trees, internal nodes) split code, -1 where no split
    thresholds: np.ndarray  # same shape: go right when bin > threshold
    leaf_values: np.ndarray  # (stages, trees, leaves), already scaled by the learning rate
    initial: np.ndarray  # (trees,) raw prediction before the first stage
    importance: np.ndarray  # (n_codes,) normalised total impurity decrease

    def raw_predictions(self, codes: np.ndarray) -> np.ndarray:
        binned = _bin(codes, self.edges)
        n, depth = len(binned), int(np.log2(self.leaf_values.shape[2]))
        raw = np.tile(self.initial, (n, 1))
        for features, thresholds, values in zip(self.features, self.thresholds, self.leaf_values):
            node = np.zeros((len(self.initial), n), dtype=np.int64)
            for level in range(depth):
                heap = 2**level - 1 + node  # breadth-first index of the internal node
                f = np.take_along_axis(features, heap, axis=1)
                b = np.take_along_axis(thresholds, heap, axis=1)
                right = binned[np.arange(n)[None], np.maximum(f, 0)] > b
                node = 2 * node + (right & (f >= 0))
            raw += np.take_along_axis(values, node, axis=1).T
        return raw

    def predict(self, codes: np.ndarray) -> np.ndarray:
        raw = self.raw_predictions(codes)
        index = (raw[:, 0] > 0).astype(int) if raw.shape[1] == 1 else raw.argmax(axis=1)
        return self.classes[index]


def _bin(codes: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    return np.stack([np.searchsorted(e, codes[:, j], side="right") for j, e in enumerate(edges)], axis=1)


def _node_histograms(tree_cell, node, weights, width, shape, root_counts):
    """Residual sums and sample counts per (tree, node, code, bin), all trees in one pass.

    `tree_cell` (trees, n, d) places each value in a layout `shape` = (trees, widest level,
    codes, bins), so a level only adds its nodes' offsets."""
    trees, max_width, d, bins = shape
    index = (tree_cell if width == 1 else tree_cell + (node * (d * bins))[:, :, None]).ravel()
    size = trees * max_width * d * bins
    sums = np.bincount(index, weights=weights, minlength=size).reshape(shape)[:, :width]
    if width == 1:  # every sample is in the root: the counts never change
        return sums, np.broadcast_to(root_counts, sums.shape)
    return sums, np.bincount(index, minlength=size).reshape(shape)[:, :width].astype(np.float64)


def _quantile_edges(column: np.ndarray, max_bins: int) -> np.ndarray:
    values = np.unique(column)
    if len(values) <= max_bins:
        return (values[:-1] + values[1:]) / 2  # every distinct value gets its own bin, as exact
    return np.unique(np.quantile(column, np.linspace(0, 1, max_bins + 1)[1:-1]))


def fit_boosted_trees(
    codes: np.ndarray,
    labels: np.ndarray,
    n_stages: int = 100,
    learning_rate: float = 0.1,
    max_depth: int = 3,
    max_bins: int = 256,
) -> BoostedTrees:
    """Fit the boosted classifier; `importance` equals sklearn's `feature_importances_` up to
    the binning of split points (see the module docstring)."""
    x = np.asarray(codes, dtype=np.float64)
    classes, y = np.unique(labels, return_inverse=True)
    n, d = x.shape
    k = len(classes)
    trees = 1 if k == 2 else k  # binary log loss fits one tree per stage, multinomial one per class
    edges = [_quantile_edges(x[:, j], max_bins) for j in range(d)]
    binned = _bin(x, edges)
    bins = max(len(e) for e in edges) + 1
    cell = binned + np.arange(d) * bins  # (n, d): histogram cell of each sample's code value
    root_counts = np.bincount(cell.ravel(), minlength=d * bins).reshape(d, bins).astype(np.float64)

    onehot = np.eye(k)[y]
    prior = onehot.mean(axis=0)
    if trees == 1:
        targets = onehot[:, 1:]
        initial = np.log(prior[1:] / prior[:1])
    else:
        targets = onehot
        initial = np.log(prior)
    raw = np.tile(initial, (n, 1))
    internal, leaves = 2**max_depth - 1, 2**max_depth
    features = np.full((n_stages, trees, internal), -1)
    thresholds = np.zeros((n_stages, trees, internal), dtype=np.int64)
    leaf_values = np.zeros((n_stages, trees, leaves))
    importance = np.zeros(d)
    tree_index = np.arange(trees)[:, None]
    layout = (trees, 2 ** (max_depth - 1), d, bins)
    tree_cell = tree_index[:, :, None] * (layout[1] * d * bins) + cell[None]

    for stage in range(n_stages):
        prob = scipy.special.expit(raw) if trees == 1 else scipy.special.softmax(raw, axis=1)
        residual = (targets - prob).T  # (trees, n): the negative gradient each tree fits
        node = np.zeros((trees, n), dtype=np.int64)
        weights = np.broadcast_to(residual[:, :, None], tree_cell.shape).ravel()  # the same at every level
        for level in range(max_depth):
            width = 2**level
            sums, counts = _node_histograms(tree_cell, node, weights, width, layout, root_counts)
            left_sum, left_n = np.cumsum(sums, axis=3), np.cumsum(counts, axis=3)
            total_sum, total_n = left_sum[..., :1, -1:], left_n[..., :1, -1:]
            right_sum, right_n = total_sum - left_sum, total_n - left_n
            with np.errstate(divide="ignore", invalid="ignore"):
                # Friedman's improvement n_l n_r / n (mean_l - mean_r)^2 = the impurity decrease.
                gain = left_n * right_n / total_n * (left_sum / left_n - right_sum / right_n) ** 2
            gain = np.where((left_n > 0) & (right_n > 0), gain, -1.0).reshape(trees, width, d * bins)
            best = gain.argmax(axis=2)
            best_gain = np.take_along_axis(gain, best[..., None], axis=2)[..., 0]
            split = best_gain > 1e-12 * np.maximum(total_n[..., 0, 0], 1)
            f, b = best // bins, best % bins
            np.add.at(importance, f[split], best_gain[split])
            heap = slice(width - 1, 2 * width - 1)
            features[stage, :, heap] = np.where(split, f, -1)
            thresholds[stage, :, heap] = b
            f_sample = np.take_along_axis(np.where(split, f, 0), node, axis=1)
            b_sample = np.take_along_axis(np.where(split, b, bins), node, axis=1)
            right = binned[np.arange(n)[None], f_sample] > b_sample
            node = 2 * node + right
        flat = (tree_index * leaves + node).ravel()
        numerator = np.bincount(flat, weights=residual.ravel(), minlength=trees * leaves)
        hessian = (prob * (1 - prob)).T.ravel()
        denominator = np.bincount(flat, weights=hessian, minlength=trees * leaves)
        if trees > 1:
            numerator *= (k - 1) / k  # Friedman's multinomial Newton step, kept by sklearn
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(np.abs(denominator) > 1e-150, numerator / denominator, 0.0)
        leaf_values[stage] = learning_rate * values.reshape(trees, leaves)
        raw += np.take_along_axis(leaf_values[stage], node, axis=1).T

    total = importance.sum()
    return BoostedTrees(
        classes=classes,
        edges=edges,
        features=features,
        thresholds=thresholds,
        leaf_values=leaf_values,
        initial=initial,
        importance=importance / total if total > 0 else importance,
    )
