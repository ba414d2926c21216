"""Concept activation vectors (Kim et al., 2018): the direction, at one layer, that separates a
concept's activations from random ones. An estimator in scikit-learn's manner."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn import linear_model
from sklearn.model_selection import train_test_split

Method = Literal["sgd", "logistic", "mean_difference"]
METHODS: tuple[str, ...] = ("sgd", "logistic", "mean_difference")


def _activations(name: str, x) -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be (n_examples, n_features) activations, got shape {a.shape}")
    if len(a) < 2:
        raise ValueError(f"{name} has {len(a)} example(s); a concept set needs at least 2")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf activations")
    return a


class CAV:
    """A concept activation vector.

    Args:
        method: "sgd" (linear SVM by SGD with hinge loss, the captum / tensorflow-tcav default),
            "logistic" (logistic regression), or "mean_difference" (FastCAV: the difference of the
            class means, thresholded half-way for accuracy).
        alpha: regularisation of the SGD classifier (captum's default 0.01).
        test_size: held-out fraction for `accuracy_`.
        seed: seeds the split and the SGD.

    Attributes (after fit):
        cav_: unit vector (n_features,) pointing from random towards the concept.
        classes_: (concept name, random name).
        accuracy_: held-out accuracy of the concept-vs-random classifier.

    Example:
        >>> cav = CAV("sgd").fit(red_activations, random_activations)
        >>> cav.cav_.shape, cav.accuracy_
    """

    def __init__(self, method: Method = "sgd", alpha: float = 0.01, test_size: float = 0.33, seed: int = 0):
        self.method = method
        self.alpha = alpha
        self.test_size = test_size
        self.seed = seed

    def fit(self, concept, random, concept_name: str = "concept", random_name: str = "random") -> "CAV":
        """Fit on concept (n, d) and random (m, d) activations; returns self.

        Raises:
            ValueError: an unknown method, fewer than 2 examples in a set, NaN/inf, or sets of
                different widths.
        """
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        positive, negative = _activations(concept_name, concept), _activations(random_name, random)
        if positive.shape[1] != negative.shape[1]:
            raise ValueError(f"{concept_name} has {positive.shape[1]} features but {random_name} has {negative.shape[1]}")
        x = np.vstack([positive, negative])
        y = np.r_[np.ones(len(positive), int), np.zeros(len(negative), int)]
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=self.test_size, random_state=self.seed, stratify=y)
        if self.method == "mean_difference":
            direction = x_train[y_train == 1].mean(0) - x_train[y_train == 0].mean(0)
            midpoint = (x_train[y_train == 1].mean(0) + x_train[y_train == 0].mean(0)) / 2
            predicted = ((x_test - midpoint) @ direction > 0).astype(int)
        else:
            model = (
                linear_model.SGDClassifier(alpha=self.alpha, max_iter=1000, tol=1e-3, random_state=self.seed)
                if self.method == "sgd"
                else linear_model.LogisticRegression(max_iter=1000)
            ).fit(x_train, y_train)
            direction = model.coef_[0]  # positive towards label 1, the concept
            predicted = model.predict(x_test)
        norm = np.linalg.norm(direction)
        if norm == 0:
            raise ValueError(f"{concept_name} and {random_name} cannot be told apart: the fitted direction is zero")
        self.cav_ = direction / norm
        self.classes_ = (concept_name, random_name)
        self.accuracy_ = float(np.mean(predicted == y_test))
        return self
