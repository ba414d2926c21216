import numpy as np
import pytest

from workbench.metrics import bootstrap_mean


def test_bootstrap_interval_matches_the_normal_approximation_on_a_large_sample():
    """Known answer: for n = 400 draws of N(2, 1), the 95% interval of the mean is about
    mean +- 1.96 / sqrt(400) = +- 0.098."""
    x = np.random.default_rng(1).normal(2.0, 1.0, 400)
    found = bootstrap_mean(x, resamples=4000)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert found.n == 400 and found.mean == pytest.approx(x.mean())
    assert found.low == pytest.approx(x.mean() - half, abs=0.015)
    assert found.high == pytest.approx(x.mean() + half, abs=0.015)
    assert bootstrap_mean(x, resamples=4000) == found  # seeded


def test_constant_small_and_missing_values():
    assert bootstrap_mean([0.3, 0.3, 0.3]) == bootstrap_mean([0.3, 0.3, 0.3])
    constant = bootstrap_mean([0.3, 0.3, 0.3])
    assert constant.low == pytest.approx(0.3) and constant.high == pytest.approx(0.3)
    one = bootstrap_mean([0.5, np.nan])  # NaN left out: one value, no interval
    assert one.n == 1 and one.mean == 0.5 and np.isnan(one.low) and np.isnan(one.high)
    assert bootstrap_mean([]).n == 0
    with pytest.raises(ValueError, match="level must be between 0 and 1"):
        bootstrap_mean([1, 2], level=95)
