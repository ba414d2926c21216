"""How sure is a mean? 95% intervals for the aggregates that dashboards and benchmarks report."""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class MeanInterval:
    """A mean with its sample size and a confidence interval [low, high]."""

    mean: float
    low: float
    high: float
    n: int


def bootstrap_mean(values, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> MeanInterval:
    """The mean of `values` (n,) with a percentile-bootstrap interval: the mean of `resamples`
    draws of n values with replacement, cut at (1 - level) / 2 and (1 + level) / 2. NaN values
    are left out. With fewer than 2 values the interval is NaN (nothing to resample).

    Raises:
        ValueError: a level outside (0, 1) or fewer than 1 resample.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return MeanInterval(float("nan"), float("nan"), float("nan"), 0)
    if len(x) < 2:
        return MeanInterval(float(x[0]), float("nan"), float("nan"), 1)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return MeanInterval(float(x.mean()), float(low), float(high), len(x))


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion successes / n (e.g. a held-out accuracy):
    (p + z^2 / 2n -+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n), z the normal quantile.
    (NaN, NaN) for n = 0.

    Raises:
        ValueError: successes outside [0, n] or a level outside (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if n == 0:
        return float("nan"), float("nan")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n = {n}, got {successes}")
    z = float(stats.norm.ppf((1 + level) / 2))
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)
