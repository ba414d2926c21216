import numpy as np
import pytest

from workbench.metrics import infomec, normalized_mutual_information

from .test_disentanglement import FACTORS, NOISE, PERFECT


def test_perfect_discrete_codes():
    result = infomec(FACTORS, FACTORS, discrete_latents=True)
    assert np.allclose(result.nmi, np.eye(2))
    assert result.infom == pytest.approx(1.0) and result.infoc == pytest.approx(1.0)
    assert result.infoe > 0.99


def test_a_factor_spread_over_two_codes_known_answer():
    codes = np.stack([FACTORS[:, 0], FACTORS[:, 0], FACTORS[:, 1]], axis=1)
    result = infomec(codes, FACTORS, discrete_latents=True)
    assert np.allclose(result.nmi, [[1, 1, 0], [0, 0, 1]])
    assert result.infom == pytest.approx(1.0)  # every code informs about one factor only
    assert result.infoc == pytest.approx((0.75 - 1 / 3) / (2 / 3))  # factor 0 is split over two codes


def test_continuous_codes_use_the_knn_estimator_seeded():
    good = infomec(PERFECT + 0.01 * NOISE, FACTORS)
    assert good.infom > 0.9 and good.infoc > 0.9 and good.infoe > 0.9
    assert np.array_equal(normalized_mutual_information(NOISE, FACTORS), normalized_mutual_information(NOISE, FACTORS))
    bad = infomec(NOISE, FACTORS)
    assert bad.infoe < 0.1


def test_inactive_codes_are_dropped_and_too_few_raise():
    codes = np.hstack([PERFECT, np.zeros((len(PERFECT), 1))])
    assert list(infomec(codes, FACTORS).active) == [True, True, False]
    with pytest.raises(ValueError, match="at least 2 active codes"):
        infomec(np.hstack([PERFECT[:, :1], np.zeros((len(PERFECT), 1))]), FACTORS)
    with pytest.raises(ValueError, match="at least 2 factors"):
        infomec(PERFECT, FACTORS[:, :1])


def test_sorted_knn_estimator_equals_sklearns():
    from sklearn.feature_selection import mutual_info_classif

    from workbench.metrics.knn_information import knn_mutual_information

    rng = np.random.default_rng(3)
    for n, k, rounding in ((40, 3, None), (500, 10, 1), (2000, 10, None)):
        labels = rng.integers(0, 4, n)
        codes = rng.normal(size=(n, 3)) + labels[:, None] * [1.0, 0.0, 0.3]
        if rounding is not None:
            codes = np.round(codes, rounding)  # ties
        expected = mutual_info_classif(codes, labels, discrete_features=False, n_neighbors=k, random_state=7)
        assert np.allclose(knn_mutual_information(codes, labels, n_neighbors=k, seed=7), expected, rtol=0, atol=1e-12)
