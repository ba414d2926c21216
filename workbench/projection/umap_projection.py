"""UMAP projections of embedding banks (vocabulary tokens, learned words, CAVs, activations).

A thin, seeded estimator over umap-learn with labels kept beside the points, so that a figure
can colour by word role, factor or concept.
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd

Metric = Literal["euclidean", "cosine"]


def curve_parameters(min_dist: float, spread: float = 1.0) -> tuple[float, float]:
    """UMAP's (a, b) of the low-dimensional similarity 1 / (1 + a d^(2b)) for min_dist and spread.

    Source: umap-learn's find_ab_params (a least-squares fit of the curve to a smoothed step).
    """
    from umap.umap_ import find_ab_params

    a, b = find_ab_params(spread, min_dist)
    return float(a), float(b)


class Projection:
    """2-D UMAP projection.

    Args:
        n_neighbors: UMAP's neighbourhood size.
        min_dist: UMAP's minimum distance between placed points.
        metric: "euclidean" or "cosine" (suits embeddings).
        random_state: makes the projection reproducible (umap-learn then runs single-threaded).

    Attributes (after fit):
        embedding_: (n, 2) coordinates of the fitted points.
        labels_: a DataFrame of the labels given to fit (one row per point).

    Example:
        >>> proj = Projection(metric="cosine").fit(words, labels={"role": roles})
        >>> proj.to_frame()  # x, y and the labels
    """

    def __init__(self, n_neighbors: int = 15, min_dist: float = 0.1, metric: Metric = "euclidean", random_state: int = 0):
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state

    def fit(self, points, labels: Mapping[str, Sequence] | pd.DataFrame | None = None) -> "Projection":
        """Fit on points (n, d); labels are columns of n values each.

        Raises:
            ValueError: fewer points than n_neighbors + 1, NaN/inf, or labels of another length.
        """
        import umap

        x = np.asarray(points, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"points must be (n_points, n_features), got shape {x.shape}")
        if len(x) <= self.n_neighbors:
            raise ValueError(f"UMAP needs more points than n_neighbors={self.n_neighbors}; got {len(x)}")
        if not np.isfinite(x).all():
            raise ValueError("points contain NaN or inf")
        frame = pd.DataFrame(labels if labels is not None else {})
        if {"x", "y"} & set(frame.columns):
            raise ValueError(f"labels may not be named 'x' or 'y' (the projection's coordinates); got {list(frame.columns)}")
        if len(frame.columns) and len(frame) != len(x):
            raise ValueError(f"labels have {len(frame)} rows for {len(x)} points")
        # UMAP's spectral start solves for 3 eigenvectors, which needs at least 4 points
        init = "spectral" if len(x) >= 4 else "random"
        self.model_ = umap.UMAP(n_neighbors=self.n_neighbors, min_dist=self.min_dist, metric=self.metric, random_state=self.random_state,
                                n_components=2, n_jobs=1, init=init)
        self.embedding_ = self.model_.fit_transform(x)
        self.labels_ = frame.reset_index(drop=True)
        return self

    def transform(self, points) -> np.ndarray:
        """Place new points (m, d) into the fitted projection: (m, 2)."""
        if not hasattr(self, "model_"):
            raise RuntimeError("call fit() before transform()")
        return self.model_.transform(np.asarray(points, dtype=np.float64))

    def to_frame(self) -> pd.DataFrame:
        """x, y and the labels, one row per fitted point."""
        frame = pd.DataFrame({"x": self.embedding_[:, 0], "y": self.embedding_[:, 1]})
        return pd.concat([frame, self.labels_], axis=1)
