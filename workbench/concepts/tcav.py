"""TCAV scores and their significance (Kim et al., 2018).

For inputs x and a layer's activations a(x), the directional derivative along a CAV v is
S(x) = grad_a f(a(x)) . v; the sign-count TCAV score is the fraction of inputs with S > 0 and
the magnitude score sum(S > 0) / sum |S|. A concept is tested against R random sets: the R
concept-vs-random scores are compared with R random-vs-random scores by a two-sided t-test,
and significance is Bonferroni-corrected over every (concept, layer) tested.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .cav import CAV, Method, _activations


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
    random_scores: np.ndarray  # (R,) random set r vs random set r+1
    accuracies: np.ndarray  # (R,) held-out CAV accuracies
    p_value: float

    @property
    def score(self) -> float:
        return float(self.scores.mean())


def _test(
    concept_name: str, layer: str, concept, random_sets: Sequence, gradients, method: Method, seed: int
) -> TCAVResult:
    if len(random_sets) < 2:
        raise ValueError(f"need at least 2 random sets for a significance test, got {len(random_sets)}")
    scores, magnitudes, accuracies, random_scores = [], [], [], []
    for r, random in enumerate(random_sets):
        cav = CAV(method, seed=seed + r).fit(concept, random, concept_name, f"random{r}")
        d = directional_derivatives(gradients, cav.cav_)
        scores.append(sign_count_score(d))
        magnitudes.append(magnitude_score(d))
        accuracies.append(cav.accuracy_)
        other = random_sets[(r + 1) % len(random_sets)]
        control = CAV(method, seed=seed + r).fit(random, other, f"random{r}", f"random{(r + 1) % len(random_sets)}")
        random_scores.append(sign_count_score(directional_derivatives(gradients, control.cav_)))
    scores, random_scores = np.array(scores), np.array(random_scores)
    if np.ptp(scores) == 0 and np.ptp(random_scores) == 0:
        p_value = 1.0 if scores[0] == random_scores[0] else 0.0
    else:
        with warnings.catch_warnings():  # near-identical scores warn of precision loss; the p-value stands
            warnings.simplefilter("ignore", RuntimeWarning)
            p_value = float(stats.ttest_ind(scores, random_scores).pvalue)
    return TCAVResult(concept_name, layer, scores, np.array(magnitudes), random_scores, np.array(accuracies), p_value)


def tcav(
    concepts: Mapping[str, Mapping[str, object]],
    random_sets: Mapping[str, Sequence[object]],
    gradients: Mapping[str, object],
    method: Method = "sgd",
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Test every concept at every layer.

    Args:
        concepts: concept name -> layer -> activations (n, d) of the concept's examples.
        random_sets: layer -> R random activation sets (m, d) (the same R at every layer).
        gradients: layer -> (n_inputs, d) gradients of the target w.r.t. that layer's
            activations, for the inputs being explained.
        method: the CAV method.
        alpha: family-wise significance level, Bonferroni-corrected over concepts x layers.

    Returns:
        Tidy frame: concept, layer, score (mean sign count), score_std, magnitude,
        random_score, random_score_std, cav_accuracy, p_value, significant.

    Raises:
        ValueError: a layer missing from random_sets or gradients (the known layers are listed).
    """
    results = []
    for name, layers in concepts.items():
        for layer, activations in layers.items():
            for needed, table in (("random_sets", random_sets), ("gradients", gradients)):
                if layer not in table:
                    raise ValueError(f"layer {layer!r} of concept {name!r} is missing from {needed}; it has {', '.join(table)}")
            results.append(_test(name, layer, activations, random_sets[layer], gradients[layer], method, seed))
    n_tests = max(len(results), 1)
    rows = []
    for result in results:
        rows.append({
            "concept": result.concept, "layer": result.layer, "score": result.score, "score_std": float(result.scores.std()),
            "magnitude": float(result.magnitudes.mean()), "random_score": float(result.random_scores.mean()),
            "random_score_std": float(result.random_scores.std()), "cav_accuracy": float(result.accuracies.mean()),
            "p_value": result.p_value, "significant": bool(result.p_value * n_tests < alpha),
        })
    return pd.DataFrame(rows)
