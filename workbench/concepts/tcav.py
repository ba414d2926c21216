"""TCAV scores and their significance (Kim et al., 2018).

For inputs x and a layer's activations a(x), the directional derivative along a CAV v is
S(x) = grad_a f(a(x)) . v; the sign-count TCAV score is the fraction of inputs with S > 0 and
the magnitude score sum(S > 0) / sum |S|. A concept is tested against R random sets.

The unit of replication is the set, not the run. The R concept-vs-random scores all share the
concept set, so they are not R independent draws: a t-test that treats them as such flags a
random set posing as a concept far more often than its level says. Here each random set j
gets the same statistic as the concept, its mean score against the other random sets (one CAV
per unordered pair; j-vs-k is the negated k-vs-j CAV, the linear SVM of swapped labels), and
the concept's mean score is tested as one more draw from those R set-level scores: a two-sided
t-test for a new observation, t = (m_c - mean m) / (sd m * sqrt(1 + 1/R)) with R - 1 degrees
of freedom. Under the null a concept set is exchangeable with the random sets, so this is the
concept-vs-random against random-vs-random comparison at the level where the samples are
independent. Significance is Bonferroni-corrected over every (concept, layer) tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .cav import CAV, Method, Solver, _activations, fit_cavs, labelled


def directional_derivatives(gradients, cav) -> np.ndarray:
    """(n,) gradients (n, d) of the target w.r.t. the activations, dotted with the CAV (d,)."""
    g = _activations("gradients", gradients)
    v = np.asarray(cav, dtype=np.float64)
    if v.shape != (g.shape[1],):
        raise ValueError(f"the CAV has shape {v.shape}, the gradients have {g.shape[1]} features")
    return g @ v


def sign_count_score(derivatives) -> float:
    """Fraction of inputs whose directional derivative is positive."""
    return float(np.mean(np.asarray(derivatives) > 0))


def magnitude_score(derivatives) -> float:
    """sum of positive derivatives / sum of absolute derivatives (0 when all are zero)."""
    d = np.asarray(derivatives, dtype=np.float64)
    total = np.abs(d).sum()
    return float(d[d > 0].sum() / total) if total > 0 else 0.0


@dataclass(frozen=True)
class TCAVResult:
    """One concept at one layer against R random sets."""

    concept: str
    layer: str
    scores: np.ndarray  # (R,) sign-count scores, concept vs random set r
    magnitudes: np.ndarray  # (R,)
    random_scores: np.ndarray  # (R,) random set j's mean score against the other random sets
    accuracies: np.ndarray  # (R,) held-out CAV accuracies
    p_value: float
    cavs: np.ndarray | None = None  # (R, d) unit CAVs, concept vs random set r
    random_pair_scores: np.ndarray | None = None  # (R, R) score of random set j vs k (diagonal NaN)
    random_cavs: np.ndarray | None = None  # (R, R, d) unit CAVs, random set j vs k (diagonal 0)

    @property
    def score(self) -> float:
        return float(self.scores.mean())


def set_level_p_value(score: float, random_scores: np.ndarray) -> float:
    """Two-sided p-value of a concept's mean score as one more draw from the random sets'
    set-level scores (a t-test for a new observation, R - 1 degrees of freedom)."""
    random_scores = np.asarray(random_scores, dtype=np.float64)
    r_count = len(random_scores)
    spread = random_scores.std(ddof=1)
    centre = random_scores.mean()
    if spread == 0:
        return 1.0 if np.isclose(score, centre) else 0.0
    t = (score - centre) / (spread * np.sqrt(1 + 1 / r_count))
    return float(2 * stats.t.sf(abs(t), r_count - 1))


def _test_layer(
    layer: str, concepts: Mapping[str, object], random_sets: Sequence, gradients, method: Method, seed: int, solver: Solver
) -> list[TCAVResult]:
    """Every concept at one layer: all CAVs (each concept against each random set, and each
    unordered pair of random sets, shared by the concepts) are fitted together, and every
    directional derivative comes from one product of the gradients with the stacked CAVs."""
    r_count = len(random_sets)
    if r_count < 3:
        raise ValueError(f"need at least 3 random sets for a significance test, got {r_count}")
    g = _activations(f"gradients at {layer!r}", gradients)
    pairs, seeds = [], []
    for name, activations in concepts.items():
        for r, random in enumerate(random_sets):
            pairs.append((activations, random, name, f"random{r}"))
            seeds.append(seed + r)
    upper = [(j, k) for j in range(r_count) for k in range(j + 1, r_count)]
    for j, k in upper:
        pairs.append((random_sets[j], random_sets[k], f"random{j}", f"random{k}"))
        seeds.append(seed + j)
    if solver == "batched":
        cavs = fit_cavs(pairs, method, seeds=seeds)
    else:  # one scikit-learn fit per pair, as captum does
        cavs = [CAV(method, random_state=s, solver=solver).fit(*labelled(concept, random)) for (concept, random, *_), s in zip(pairs, seeds)]
    directions = np.stack([c.cav_ for c in cavs])  # (k, d)
    if directions.shape[1] != g.shape[1]:
        raise ValueError(f"at {layer!r} the activations have {directions.shape[1]} features but the gradients have {g.shape[1]}")
    derivatives = g @ directions.T  # (n_inputs, k)
    signs = (derivatives > 0).mean(0)
    magnitudes = [magnitude_score(derivatives[:, j]) for j in range(len(cavs))]

    n_concept_pairs = len(concepts) * r_count
    pair_scores = np.full((r_count, r_count), np.nan)
    random_cavs = np.zeros((r_count, r_count, directions.shape[1]))
    reverse_signs = (derivatives[:, n_concept_pairs:] < 0).mean(0)  # k vs j: the negated CAV's derivatives
    for (j, k), score, reverse, direction in zip(upper, signs[n_concept_pairs:], reverse_signs, directions[n_concept_pairs:]):
        pair_scores[j, k], random_cavs[j, k] = score, direction
        pair_scores[k, j], random_cavs[k, j] = reverse, -direction
    random_scores = np.nanmean(pair_scores, axis=1)
    results = []
    for i, name in enumerate(concepts):
        rows = slice(i * r_count, (i + 1) * r_count)
        scores = signs[rows]
        results.append(TCAVResult(
            name, layer, scores, np.array(magnitudes[rows]), random_scores, np.array([c.accuracy_ for c in cavs[rows]]),
            set_level_p_value(scores.mean(), random_scores), directions[rows], pair_scores, random_cavs,
        ))
    return results


def _results(
    concepts: Mapping[str, Mapping[str, object]],
    random_sets: Mapping[str, Sequence[object]],
    gradients: Mapping[str, object],
    method: Method,
    seed: int,
    solver: Solver,
) -> list[TCAVResult]:
    """One TCAVResult per (concept, layer), concept by concept in the order given (see tcav())."""
    layers: dict[str, dict[str, object]] = {}
    for name, by_layer in concepts.items():
        for layer, activations in by_layer.items():
            for needed, table in (("random_sets", random_sets), ("gradients", gradients)):
                if layer not in table:
                    raise ValueError(f"layer {layer!r} of concept {name!r} is missing from {needed}; it has {', '.join(table)}")
            layers.setdefault(layer, {})[name] = activations
    found = {}
    for layer, at_layer in layers.items():
        for result in _test_layer(layer, at_layer, random_sets[layer], gradients[layer], method, seed, solver):
            found[result.concept, layer] = result
    return [found[name, layer] for name, by_layer in concepts.items() for layer in by_layer]


@dataclass(frozen=True)
class TCAVReport:
    """Every concept tested at every layer: the results, and the family-wise level at which
    they are called significant (Bonferroni over all of them)."""

    results: tuple[TCAVResult, ...]
    alpha: float = 0.05

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def result(self, concept: str, layer: str) -> TCAVResult:
        """The result of one concept at one layer.

        Raises:
            KeyError: naming the concepts and layers tested.
        """
        for found in self.results:
            if (found.concept, found.layer) == (concept, layer):
                return found
        raise KeyError(f"no result for {concept!r} at {layer!r}; tested: {sorted({(r.concept, r.layer) for r in self.results})}")

    def significant(self, result: TCAVResult) -> bool:
        """Whether a result passes the Bonferroni-corrected level."""
        return bool(result.p_value * max(len(self.results), 1) < self.alpha)

    def to_frame(self) -> pd.DataFrame:
        """Tidy, one row per (concept, layer): concept, layer, score (mean sign count),
        score_std, magnitude, random_score (the mean of the random sets' set-level scores, 0.5
        by symmetry), random_score_std (their spread: the null's width), cav_accuracy,
        p_value, significant."""
        return pd.DataFrame([{
            "concept": r.concept, "layer": r.layer, "score": r.score, "score_std": float(r.scores.std()),
            "magnitude": float(r.magnitudes.mean()), "random_score": float(r.random_scores.mean()),
            "random_score_std": float(r.random_scores.std(ddof=1)), "cav_accuracy": float(r.accuracies.mean()),
            "p_value": r.p_value, "significant": self.significant(r),
        } for r in self.results], columns=["concept", "layer", "score", "score_std", "magnitude", "random_score",
                                           "random_score_std", "cav_accuracy", "p_value", "significant"])


def tcav(
    concepts: Mapping[str, Mapping[str, object]],
    random_sets: Mapping[str, Sequence[object]],
    gradients: Mapping[str, object],
    method: Method = "sgd",
    alpha: float = 0.05,
    seed: int = 0,
    solver: Solver = "batched",
) -> TCAVReport:
    """Test every concept at every layer, from activations and gradients already computed
    (`run_tcav` computes them on a pipeline).

    At each layer all CAVs are fitted together (fit_cavs): every concept against each of the R
    random sets, and every pair of random sets for the random-vs-random baseline, which all
    concepts share. Concept-vs-random set r and random j-vs-k are split with seed + r, seed + j.
    The p-value compares the concept's mean score with each random set's mean score against the
    others (see the module's docstring).

    Args:
        concepts: concept name -> layer -> activations (n, d) of the concept's examples.
        random_sets: layer -> R random activation sets (m, d) (the same R at every layer).
        gradients: layer -> (n_inputs, d) gradients of the target w.r.t. that layer's
            activations, for the inputs being explained.
        method: the CAV method.
        alpha: family-wise significance level, Bonferroni-corrected over concepts x layers.
        solver: "batched" (all CAVs of a layer fitted together, see fit_cavs) or "sklearn"
            (one scikit-learn fit per pair, as captum does).

    Returns:
        A TCAVReport: `.results` (scores per random set, CAVs, p-values), `.to_frame()`.

    Raises:
        ValueError: a layer missing from random_sets or gradients (the known layers are listed),
            fewer than 3 random sets, or activations and gradients of different widths.
    """
    return TCAVReport(tuple(_results(concepts, random_sets, gradients, method, seed, solver)), alpha)
