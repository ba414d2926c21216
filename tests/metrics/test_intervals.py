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


def test_wilson_interval_known_answers():
    from workbench.metrics import wilson_interval

    # Wilson (1927) / Newcombe (1998) table: 81 of 263 -> 0.2553 to 0.3662
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=5e-4) and high == pytest.approx(0.3662, abs=5e-4)
    low, high = wilson_interval(0, 10)  # never below 0: Newcombe's 0 of 10 -> 0 to 0.2775
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.2775, abs=5e-4)
    assert all(np.isnan(wilson_interval(0, 0)))
    with pytest.raises(ValueError, match="between 0 and n = 3"):
        wilson_interval(4, 3)
