"""Concept activation vectors (Kim et al., 2018): the direction, at one layer, that separates a
concept's activations from random ones. An estimator in scikit-learn's manner.

TCAV fits many CAVs at a layer (every concept against R random sets, and the random sets against
each other), all small problems of the same size. `fit_cavs` fits them together: the linear SVM
(hinge loss, L2 penalty `alpha`: the objective scikit-learn's SGDClassifier, and so captum and
tensorflow-tcav, descends) and logistic regression are solved to their optimum by one batched
Newton iteration over all pairs (see linear.py), instead of one SGD run per pair.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from sklearn import linear_model
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from .linear import fit_linear

Method = Literal["sgd", "logistic", "mean_difference"]
Solver = Literal["batched", "sklearn"]
METHODS: tuple[str, ...] = ("sgd", "logistic", "mean_difference")
SOLVERS: tuple[str, ...] = ("batched", "sklearn")


def _activations(name: str, x, minimum: int = 2) -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be (n_examples, n_features) activations, got shape {a.shape}")
    if len(a) < minimum:
        raise ValueError(f"{name} has {len(a)} example(s); a concept set needs at least 2")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf activations")
    return a


class CAV(BaseEstimator):
    """A concept activation vector: a scikit-learn estimator (works with `clone`, `get_params`).

    Args:
        method: "sgd" (linear SVM: hinge loss with an L2 penalty, the captum / tensorflow-tcav
            default, which they fit with scikit-learn's SGDClassifier), "logistic" (logistic
            regression, scikit-learn's default C=1), or "mean_difference" (FastCAV: the
            difference of the class means, thresholded half-way for accuracy).
        alpha: L2 penalty of the SVM (captum's default 0.01), as in SGDClassifier: the objective
            is mean hinge loss + alpha / 2 * |w|^2.
        test_size: held-out fraction for `accuracy_` (a stratified split seeded by `random_state`).
        random_state: seeds the split (and the SGD with solver="sklearn").
        solver: "batched" solves the SVM / logistic objective to its optimum (and fits many
            CAVs at once through `fit_cavs`); "sklearn" runs scikit-learn's SGDClassifier /
            LogisticRegression, as captum does, for parity checks.

    Attributes (after fit):
        cav_: unit vector (n_features,) pointing from the random set towards the concept.
        coef_, intercept_: the classifier's weights (n_features,) and bias (positive: concept).
        classes_: array([0, 1]): 0 the random set, 1 the concept.
        accuracy_: held-out accuracy of the concept-vs-random classifier.

    Example:
        >>> X = np.vstack([red, random]); y = np.r_[np.ones(len(red)), np.zeros(len(random))]
        >>> cav = CAV("sgd").fit(X, y)
        >>> cav.cav_.shape, cav.accuracy_, cav.decision_function(X).shape
    """

    def __init__(
        self, method: Method = "sgd", alpha: float = 0.01, test_size: float = 0.33, random_state: int = 0, solver: Solver = "batched"
    ):
        self.method = method
        self.alpha = alpha
        self.test_size = test_size
        self.random_state = random_state
        self.solver = solver

    def fit(self, X, y) -> "CAV":
        """Fit on activations X (n, d) of both sets, y (n,) 1 for the concept's rows and 0 for
        the random set's; returns self.

        Raises:
            ValueError: an unknown method or solver, labels other than 0/1, fewer than 2
                examples in a set, NaN/inf, or sets that cannot be told apart.
        """
        concept, random = _sets_of(X, y)
        _check(self.method, self.solver)
        if self.solver == "batched":
            fitted = fit_cavs([(concept, random)], self.method, self.alpha, self.test_size, [self.random_state])[0]
            self.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
            return self
        positive, negative = _pair(concept, random, "concept", "random")
        x_train, x_test, y_train, y_test = _split(positive, negative, self.test_size, self.random_state)
        model = (
            linear_model.SGDClassifier(alpha=self.alpha, max_iter=1000, tol=1e-3, random_state=self.random_state)
            if self.method == "sgd"
            else linear_model.LogisticRegression(max_iter=1000)
        ).fit(x_train, (y_train > 0).astype(int))
        return self._set(model.coef_[0], float(model.intercept_[0]), (x_train, x_test), y_test, ("concept", "random"))

    def decision_function(self, X) -> np.ndarray:
        """Signed distance-like scores (n,) of activations X (n, d): positive on the concept's side."""
        check_is_fitted(self, "coef_")
        return _activations("X", X, minimum=1) @ self.coef_ + self.intercept_

    def predict(self, X) -> np.ndarray:
        """1 where X (n, d) falls on the concept's side, else 0."""
        return (self.decision_function(X) > 0).astype(int)

    def _set(self, coef, intercept, x_parts, y_test, names) -> "CAV":
        coef = np.asarray(coef, dtype=np.float64)
        norm = np.linalg.norm(coef)
        x_train, x_test = x_parts
        x = np.vstack([x_train, x_test])
        # Sets that differ only by rounding noise give a tiny direction that, normalised, would be
        # scored as if it meant something: refuse directions along which the examples spread by
        # less than a millionth of their own magnitude.
        spread = np.ptp(x @ coef) / norm if norm > 0 and np.isfinite(norm) else 0.0
        if spread <= 1e-6 * max(np.abs(x).max(), 1e-30):
            raise ValueError(f"{names[0]} and {names[1]} cannot be told apart: their examples differ by less than a "
                             "millionth of their size along the fitted direction (identical or constant sets)")
        self.coef_, self.intercept_ = coef, float(intercept)
        self.cav_ = coef / norm
        self.classes_ = np.array([0, 1])
        self.accuracy_ = float(np.mean(np.where(x_test @ self.coef_ + self.intercept_ > 0, 1, -1) == y_test))
        return self


def labelled(concept, random) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) for `CAV.fit` from a concept's activations (n, d) and a random set's (m, d):
    X = (n + m, d), y = n ones then m zeros."""
    concept, random = _pair(concept, random, "concept", "random")
    return np.vstack([concept, random]), np.r_[np.ones(len(concept), int), np.zeros(len(random), int)]


def _sets_of(X, y) -> tuple[np.ndarray, np.ndarray]:
    """(concept rows, random rows) of X by labels y (1 concept, 0 random)."""
    x = _activations("X", X, minimum=1)
    labels = np.asarray(y)
    if labels.shape != (len(x),):
        raise ValueError(f"y must hold one label per row of X ({len(x)}), got shape {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"y must be 1 for the concept's examples and 0 for the random set's, got values {np.unique(labels)[:5]}")
    return x[labels == 1], x[labels == 0]


def _check(method: str, solver: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if solver == "sklearn" and method == "mean_difference":
        raise ValueError("mean_difference has no scikit-learn solver; use solver='batched'")


def _pair(concept, random, concept_name: str, random_name: str) -> tuple[np.ndarray, np.ndarray]:
    positive, negative = _activations(concept_name, concept), _activations(random_name, random)
    if positive.shape[1] != negative.shape[1]:
        raise ValueError(f"{concept_name} has {positive.shape[1]} features but {random_name} has {negative.shape[1]}")
    return positive, negative


_SPLITS: dict[tuple[int, int, float, int], tuple[np.ndarray, np.ndarray]] = {}


def _split_indices(n_positive: int, n_negative: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's stratified split of (n_positive ones, n_negative zeros), memoised: every
    pair of the same sizes and seed splits the same way."""
    key = (n_positive, n_negative, test_size, seed)
    if key not in _SPLITS:
        y = np.r_[np.ones(n_positive, int), np.zeros(n_negative, int)]
        _SPLITS[key] = train_test_split(np.arange(len(y)), test_size=test_size, random_state=seed, stratify=y)
    return _SPLITS[key]


def _split(positive: np.ndarray, negative: np.ndarray, test_size: float, seed: int):
    """Stratified train/test rows and labels (+1 concept, -1 random)."""
    x = np.vstack([positive, negative])
    y = np.r_[np.ones(len(positive)), -np.ones(len(negative))]
    train, test = _split_indices(len(positive), len(negative), test_size, seed)
    return x[train], x[test], y[train], y[test]


def fit_cavs(
    pairs: Sequence[tuple],
    method: Method = "sgd",
    alpha: float = 0.01,
    test_size: float = 0.33,
    seeds: int | Sequence[int] = 0,
) -> list[CAV]:
    """Fit many CAVs together (the batched solver).

    Args:
        pairs: k tuples (concept (n_j, d), random (m_j, d)[, concept name, random name]); sizes
            may differ between pairs, the width d may not.
        method: as for CAV.
        alpha: as for CAV.
        test_size: as for CAV.
        seeds: one seed for all pairs, or k seeds (each seeds that pair's train/test split).

    Returns:
        k fitted CAV estimators, in order, each as CAV(method, alpha, test_size, seed).fit(X, y)
        would give on the pair's rows (X = concept then random, y = 1 then 0).

    Raises:
        ValueError: as CAV.fit, naming the pair; or pairs of different widths.

    Example:
        >>> cavs = fit_cavs([(red, r) for r in randoms], seeds=range(len(randoms)))
        >>> np.stack([c.cav_ for c in cavs]).shape  # (R, d)
    """
    _check(method, "batched")
    seeds = [int(seeds)] * len(pairs) if np.isscalar(seeds) else [int(s) for s in seeds]
    if len(seeds) != len(pairs):
        raise ValueError(f"got {len(seeds)} seeds for {len(pairs)} pairs")
    if not pairs:
        return []
    splits, names = [], []
    for pair in pairs:
        concept, random, *rest = pair
        concept_name, random_name = (list(rest) + ["concept", "random"][len(rest):])[:2]
        names.append((concept_name, random_name))
        splits.append(_split(*_pair(concept, random, concept_name, random_name), test_size, seeds[len(splits)]))
    widths = {s[0].shape[1] for s in splits}
    if len(widths) > 1:
        raise ValueError(f"pairs fitted together must have one width; got widths {sorted(widths)}")
    k, d, n = len(splits), widths.pop(), max(len(s[0]) for s in splits)
    x, y, mask = np.zeros((k, n, d)), np.zeros((k, n)), np.zeros((k, n))
    for j, (x_train, _, y_train, _) in enumerate(splits):
        x[j, : len(x_train)], y[j, : len(x_train)], mask[j, : len(x_train)] = x_train, y_train, 1.0
    if method == "mean_difference":
        positive, negative = mask * (y > 0), mask * (y < 0)
        mean_pos = np.einsum("kn,knd->kd", positive, x) / positive.sum(1, keepdims=True)
        mean_neg = np.einsum("kn,knd->kd", negative, x) / negative.sum(1, keepdims=True)
        coef = mean_pos - mean_neg
        intercept = -np.einsum("kd,kd->k", coef, (mean_pos + mean_neg) / 2)
    else:
        # logistic: scikit-learn's LogisticRegression(C=1) minimises sum(loss) + |w|^2 / 2, i.e. alpha = 1 / n
        penalty = alpha if method == "sgd" else 1.0 / mask.sum(1)
        coef, intercept = fit_linear(x, y, mask, "hinge" if method == "sgd" else "logistic", alpha=penalty)
    fitted = []
    for j, (_, x_test, _, y_test) in enumerate(splits):
        cav = CAV(method, alpha, test_size, seeds[j])
        fitted.append(cav._set(coef[j], intercept[j], splits[j][:2], y_test, names[j]))
    return fitted
