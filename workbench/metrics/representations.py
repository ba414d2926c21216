"""Comparing representations: similarity, norms, nearest vocabulary tokens, and which
representation carries which factor (the probe-leakage matrix)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn import linear_model, pipeline, preprocessing
from sklearn.model_selection import train_test_split

from .intervals import wilson_interval
from .validation import as_matrix, codes_and_factors


def cosine_similarity_matrix(a, b=None) -> np.ndarray:
    """(n, m) cosine similarities between rows of a (n, d) and b (m, d) (default: a itself).

    Raises:
        ValueError: on differing widths or a zero vector.
    """
    x = as_matrix("a", a).astype(np.float64)
    y = x if b is None else as_matrix("b", b).astype(np.float64)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"a has width {x.shape[1]} but b has width {y.shape[1]}; expected equal widths")
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    if (nx == 0).any() or (ny == 0).any():
        raise ValueError("a zero vector has no direction; cosine similarity is undefined for it")
    return (x / nx[:, None]) @ (y / ny[:, None]).T


def norms(vectors) -> np.ndarray:
    """(n,) Euclidean norm of each row."""
    return np.linalg.norm(as_matrix("vectors", vectors).astype(np.float64), axis=1)


def nearest_tokens(vectors, vocabulary, tokens: Sequence[str], k: int = 5, names: Sequence[str] | None = None) -> pd.DataFrame:
    """The k vocabulary tokens most cosine-similar to each vector.

    Args:
        vectors: (n, d) embeddings to look up (e.g. learned words).
        vocabulary: (V, d) token embedding table.
        tokens: the V token strings.
        k: how many neighbours.
        names: labels of the n vectors (default "0", "1", ...).

    Returns:
        Tidy frame: query, rank (1 = nearest), token, token_id, similarity.
    """
    table = as_matrix("vocabulary", vocabulary)
    if len(tokens) != len(table):
        raise ValueError(f"tokens has {len(tokens)} entries but vocabulary has {len(table)} rows")
    if not 1 <= k <= len(table):
        raise ValueError(f"k must be between 1 and {len(table)}, got {k}")
    similarity = cosine_similarity_matrix(vectors, table)
    names = list(names) if names is not None else [str(i) for i in range(len(similarity))]
    if len(names) != len(similarity):
        raise ValueError(f"names has {len(names)} entries for {len(similarity)} vectors")
    rows = []
    for name, row in zip(names, similarity):
        for rank, index in enumerate(np.argsort(-row, kind="stable")[:k], start=1):
            rows.append({"query": name, "rank": rank, "token": tokens[index], "token_id": int(index), "similarity": float(row[index])})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ProbeLeakage:
    """Held-out accuracy of a linear probe from each representation to each factor.

    accuracy: (representations, factors); chance: (factors,) majority-class rate on the test
    split; above_chance = accuracy - chance; n_test: the held-out examples each accuracy is
    measured on.
    """

    representations: tuple[str, ...]
    factors: tuple[str, ...]
    accuracy: np.ndarray
    chance: np.ndarray
    n_test: int = 0

    @property
    def above_chance(self) -> np.ndarray:
        return self.accuracy - self.chance[None, :]

    def to_frame(self) -> pd.DataFrame:
        """Tidy: representation, factor, accuracy, accuracy_low, accuracy_high (95% Wilson
        interval over the n_test held-out examples), chance, above_chance, n_test."""
        rows = []
        for i, r in enumerate(self.representations):
            for j, f in enumerate(self.factors):
                low, high = wilson_interval(round(self.accuracy[i, j] * self.n_test), self.n_test)
                rows.append({"representation": r, "factor": f, "accuracy": self.accuracy[i, j], "accuracy_low": low, "accuracy_high": high,
                             "chance": self.chance[j], "above_chance": self.above_chance[i, j], "n_test": self.n_test})
        return pd.DataFrame(rows)


def probe_leakage(
    representations: Mapping[str, object],
    factors,
    factor_names: Sequence[str] | None = None,
    test_size: float = 0.3,
    seed: int = 0,
) -> ProbeLeakage:
    """Which representation carries which factor: a standardised logistic-regression probe per
    (representation, factor), trained and scored on one seeded split of the samples.

    Args:
        representations: name -> (n_samples, d) array (e.g. each learned word per image).
        factors: (n_samples, n_factors) integer labels, or a DataFrame (columns = factors).
        factor_names: names of the factor columns (default: DataFrame columns or "0", "1", ...).

    Raises:
        ValueError: mismatched sample counts, a constant factor, NaN/inf, no representations.
    """
    if not representations:
        raise ValueError("representations is empty; expected name -> (n_samples, d) arrays")
    if isinstance(factors, pd.DataFrame):
        factor_names = factor_names or [str(c) for c in factors.columns]
        columns = [factors[c].to_numpy() for c in factors.columns]
    else:
        columns = list(as_matrix("factors", factors, integer=True).T)
    labels = np.stack([preprocessing.LabelEncoder().fit_transform(c) for c in columns], axis=1)
    factor_names = list(factor_names) if factor_names is not None else [str(j) for j in range(labels.shape[1])]
    if len(factor_names) != labels.shape[1]:
        raise ValueError(f"factor_names has {len(factor_names)} entries for {labels.shape[1]} factors")
    train, test = train_test_split(np.arange(len(labels)), test_size=test_size, random_state=seed)
    accuracy = np.zeros((len(representations), labels.shape[1]))
    for i, (name, representation) in enumerate(representations.items()):
        x, _ = codes_and_factors(representation, labels, codes_name=f"representations[{name!r}]")
        for j in range(labels.shape[1]):
            probe = pipeline.make_pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression(max_iter=500))
            probe.fit(x[train], labels[train, j])
            accuracy[i, j] = np.mean(probe.predict(x[test]) == labels[test, j])
    chance = np.array([np.bincount(labels[test, j]).max() / len(test) for j in range(labels.shape[1])])
    return ProbeLeakage(tuple(representations), tuple(factor_names), accuracy, chance, len(test))
