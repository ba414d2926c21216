"""Known answers built from the formulas, and bad input."""

import numpy as np
import pytest

from workbench.metrics import (
    dci,
    dci_fast,
    explicitness,
    gaussian_total_correlation,
    gaussian_wasserstein_correlation,
    irs,
    mig,
    modularity,
    sap,
)


def grid(values=4, repeats=25):
    """Two independent factors over a full grid: every combination equally often."""
    a, b = np.meshgrid(np.arange(values), np.arange(values), indexing="ij")
    factors = np.stack([a.ravel(), b.ravel()], axis=1)
    return np.tile(factors, (repeats, 1))


FACTORS = grid()
PERFECT = FACTORS.astype(float)  # code i is factor i
rng = np.random.default_rng(0)
NOISE = rng.normal(size=(len(FACTORS), 2))


def test_perfect_codes_score_one():
    assert mig(PERFECT, FACTORS) == pytest.approx(1.0)
    assert modularity(PERFECT, FACTORS) == pytest.approx(1.0)
    assert irs(PERFECT, FACTORS) == pytest.approx(1.0)
    assert sap(PERFECT, FACTORS, continuous_factors=True) == pytest.approx(1.0)
    result = dci(PERFECT, FACTORS)
    assert result.disentanglement > 0.95 and result.completeness > 0.95 and result.informativeness == 1.0
    assert result.importance.shape == (2, 2)


def test_swapped_or_mixed_codes():
    swapped = PERFECT[:, ::-1]
    assert mig(swapped, FACTORS) == pytest.approx(1.0)  # MIG does not care which code
    mixed = np.stack([PERFECT[:, 0] + PERFECT[:, 1], PERFECT[:, 0] - PERFECT[:, 1]], axis=1)
    assert mig(mixed, FACTORS) < 0.5
    assert modularity(mixed, FACTORS) < 0.5


def test_noise_scores_low():
    assert mig(NOISE, FACTORS) < 0.05
    noisy = dci(NOISE, FACTORS)
    assert noisy.informativeness < 0.35 and noisy.disentanglement < 0.05  # chance is 0.25


def test_sap_discrete_known_answer():
    factors = grid(values=2)
    codes = factors.astype(float)
    # each code predicts its own binary factor perfectly and the other at chance (0.5)
    assert sap(codes, factors, codes_test=codes, factors_test=factors) == pytest.approx(0.5)


def test_explicitness_of_perfect_and_noisy_codes():
    onehot = np.eye(4)[FACTORS[:, 0]] * 3
    codes = np.hstack([onehot, np.eye(4)[FACTORS[:, 1]] * 3])
    assert explicitness(codes, FACTORS) == pytest.approx(1.0)
    assert explicitness(NOISE, FACTORS) < 0.65


def test_fast_dci_is_close_to_exact():
    codes = np.hstack([PERFECT + 0.7 * NOISE, np.random.default_rng(7).normal(size=(len(FACTORS), 2))])
    exact, fast = dci(codes, FACTORS), dci_fast(codes, FACTORS)
    assert abs(exact.disentanglement - fast.disentanglement) < 0.02
    assert abs(exact.completeness - fast.completeness) < 0.02
    assert abs(exact.informativeness - fast.informativeness) < 0.05


def test_dci_is_seeded():
    codes = PERFECT + 0.5 * NOISE
    assert dci(codes, FACTORS).disentanglement == dci(codes, FACTORS).disentanglement


def test_gaussian_scores_known_answers():
    cov = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert gaussian_total_correlation(cov) == pytest.approx(-0.5 * np.log(0.75))
    assert gaussian_wasserstein_correlation(cov) == pytest.approx(4 - 2 * (np.sqrt(1.5) + np.sqrt(0.5)))
    assert gaussian_total_correlation(np.diag([2.0, 3.0])) == pytest.approx(0.0)
    assert gaussian_wasserstein_correlation(np.diag([2.0, 3.0])) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: mig(PERFECT, np.zeros((len(PERFECT), 1), int)), "factors column 0 has 1 distinct value"),
        (lambda: mig(PERFECT[:10], FACTORS), "codes has 10 samples but factors has 400"),
        (lambda: mig(np.full_like(PERFECT, np.nan), FACTORS), "codes contains NaN or inf"),
        (lambda: mig(PERFECT, FACTORS + 0.5), "factors must hold integer labels"),
        (lambda: mig(PERFECT[:, :1], FACTORS), "at least 2 columns"),
        (lambda: gaussian_total_correlation(np.ones((2, 3))), "square"),
        (lambda: gaussian_total_correlation(np.array([[1.0, 2.0], [2.0, 1.0]])), "positive definite"),
        (lambda: dci(PERFECT, FACTORS, codes_test=PERFECT), "both codes_test and factors_test"),
    ],
)
def test_bad_input_is_named(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()
