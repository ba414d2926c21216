"""The batched CAV fitter: known answers, the exact optimum of the SVM objective, and agreement
with scikit-learn's per-pair fits (to SGD's own noise for the SVM, to tolerance for logistic)."""

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression, SGDClassifier

from workbench.concepts import CAV, fit_cavs, labelled, tcav
from workbench.concepts.cav import _split
from workbench.concepts.linear import fit_linear


def svm_objective(w, b, x, y, alpha):
    return np.maximum(0, 1 - y * (x @ w + b)).mean() + alpha / 2 * w @ w


def svm_by_qp(x, y, alpha):
    """The hinge-loss SVM as a quadratic programme in (w, b, slack), solved by SLSQP: the reference."""
    n, d = x.shape
    cons = [
        {"type": "ineq", "fun": lambda v: y * (x @ v[:d] + v[d]) - 1 + v[d + 1:], "jac": lambda v: np.c_[y[:, None] * x, y, np.eye(n)]},
        {"type": "ineq", "fun": lambda v: v[d + 1:], "jac": lambda v: np.c_[np.zeros((n, d + 1)), np.eye(n)]},
    ]
    result = minimize(lambda v: v[d + 1:].mean() + alpha / 2 * v[:d] @ v[:d], np.zeros(d + 1 + n),
                      jac=lambda v: np.r_[alpha * v[:d], 0, np.ones(n) / n], constraints=cons, method="SLSQP",
                      options={"maxiter": 2000, "ftol": 1e-14})
    return result.x[:d], result.x[d]


def planted_problem(rng, n, d, shift):
    x = rng.normal(size=(n, d))
    y = np.where(np.arange(n) < n // 2, 1.0, -1.0)
    x[y > 0, 0] += shift
    return x, y


@pytest.mark.parametrize("alpha, w", [(0.01, 1.0), (0.5, 1.0), (4.0, 0.25)])
def test_two_points_known_answer(alpha, w):
    # x = +-1 with labels +-1: w = 1 (the margin) while alpha < 1, else 1 / alpha; b = 0
    coef, intercept = fit_linear(np.array([[[1.0], [-1.0]]]), np.array([[1.0, -1.0]]), np.ones((1, 2)), "hinge", alpha)
    assert coef[0, 0] == pytest.approx(w, rel=1e-3) and intercept[0] == pytest.approx(0, abs=1e-3)


@pytest.mark.parametrize("n, d, shift", [(40, 6, 1.0), (40, 6, 3.0), (16, 30, 1.0)])
def test_hinge_reaches_the_svm_optimum(n, d, shift):
    x, y = planted_problem(np.random.default_rng(d + n), n, d, shift)
    coef, intercept = fit_linear(x[None], y[None], np.ones((1, n)), "hinge", 0.01)
    w_ref, b_ref = svm_by_qp(x, y, 0.01)
    # the hinge is smoothed over a band of 1e-4 below the margin at the end: the objective is within 1e-4 / 2
    assert svm_objective(coef[0], intercept[0], x, y, 0.01) == pytest.approx(svm_objective(w_ref, b_ref, x, y, 0.01), abs=5e-5)
    assert np.linalg.norm(coef[0] - w_ref) <= 5e-3 * np.linalg.norm(w_ref)


def test_logistic_matches_scikit_learn():
    x, y = planted_problem(np.random.default_rng(1), 50, 8, 1.0)
    reference = LogisticRegression(max_iter=1000, tol=1e-10).fit(x, y > 0)
    coef, intercept = fit_linear(x[None], y[None], np.ones((1, 50)), "logistic", 1 / 50)  # C = 1
    assert np.allclose(coef[0], reference.coef_[0], rtol=1e-4, atol=1e-6)
    assert intercept[0] == pytest.approx(reference.intercept_[0], abs=1e-5)


def test_svm_cav_is_scikit_learns_sgd_cav_up_to_sgd_noise():
    """SGDClassifier descends the same objective: our CAV sits among its runs (different
    shuffles), no farther from each than they are from one another, at a lower objective."""
    rng = np.random.default_rng(3)
    concept, random = rng.normal(size=(50, 16)), rng.normal(size=(50, 16))
    concept[:, :3] += 0.8
    ours = CAV("sgd").fit(*labelled(concept, random))
    x_train, _, y_train, _ = _split(concept, random, 0.33, 0)
    runs = [SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3, random_state=s).fit(x_train, y_train > 0) for s in range(8)]
    directions = np.array([r.coef_[0] / np.linalg.norm(r.coef_[0]) for r in runs])
    between_runs = [directions[i] @ directions[j] for i in range(8) for j in range(i + 1, 8)]
    to_ours = directions @ ours.cav_
    assert to_ours.mean() >= np.mean(between_runs) - 0.01 and to_ours.min() >= min(between_runs) - 0.02
    mean_direction = directions.mean(0) / np.linalg.norm(directions.mean(0))
    assert mean_direction @ ours.cav_ > 0.97
    ours_objective = svm_objective(ours.coef_, ours.intercept_, x_train, y_train, 0.01)
    assert all(ours_objective <= svm_objective(r.coef_[0], r.intercept_[0], x_train, y_train, 0.01) + 1e-9 for r in runs)
    sklearn_cav = CAV("sgd", solver="sklearn").fit(*labelled(concept, random))
    assert sklearn_cav.cav_ @ ours.cav_ > min(between_runs) - 0.02


@pytest.mark.parametrize("method", ["sgd", "logistic", "mean_difference"])
def test_fitting_together_equals_fitting_alone(method):
    """Pairs of different sizes are padded; each comes out as its own CAV.fit would."""
    rng = np.random.default_rng(4)
    sizes = [(20, 20), (12, 30), (40, 9)]
    pairs = [(rng.normal(size=(n, 5)) + [1, 0, 0, 0, 0], rng.normal(size=(m, 5)), f"c{n}", f"r{m}") for n, m in sizes]
    together = fit_cavs(pairs, method, seeds=[0, 1, 2])
    for j, (concept, random, _, _) in enumerate(pairs):
        alone = CAV(method, random_state=j).fit(*labelled(concept, random))
        assert np.allclose(together[j].cav_, alone.cav_, atol=1e-6)
        assert together[j].accuracy_ == alone.accuracy_ and list(together[j].classes_) == [0, 1]


def test_mean_difference_known_answer():
    concept = np.array([[3.0, 1.0]] * 4)
    cav = CAV("mean_difference", test_size=0.5).fit(*labelled(concept, -concept))
    assert np.allclose(cav.cav_, [3 / 10**0.5, 1 / 10**0.5]) and cav.accuracy_ == 1.0 and cav.intercept_ == 0


def test_random_vs_random_cavs_are_fitted_once_and_shared():
    rng = np.random.default_rng(5)
    randoms = [rng.normal(size=(30, 4)) for _ in range(3)]
    gradients = rng.normal(size=(25, 4))
    red, blue = rng.normal(size=(30, 4)) + [2, 0, 0, 0], rng.normal(size=(30, 4)) + [0, 2, 0, 0]
    results = tcav({"red": {"mid": red}, "blue": {"mid": blue}}, {"mid": randoms}, {"mid": gradients}).results
    assert [r.concept for r in results] == ["red", "blue"]
    assert np.array_equal(results[0].random_cavs, results[1].random_cavs)
    # the same numbers as the one-pair-at-a-time definition
    for result, concept in zip(results, (red, blue)):
        for r, random in enumerate(randoms):
            cav = CAV(random_state=r).fit(*labelled(concept, random)).cav_
            assert np.allclose(result.cavs[r], cav) and result.scores[r] == np.mean(gradients @ cav > 0)
        for j in range(3):
            for k in range(j + 1, 3):
                control = CAV(random_state=j).fit(*labelled(randoms[j], randoms[k])).cav_
                assert np.allclose(result.random_cavs[j, k], control) and np.allclose(result.random_cavs[k, j], -control)
                assert result.random_pair_scores[j, k] == np.mean(gradients @ control > 0)
                assert result.random_pair_scores[k, j] == np.mean(gradients @ control < 0)
        # each random set's set-level score: its mean against the other two
        assert np.allclose(result.random_scores, np.nanmean(result.random_pair_scores, axis=1))


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: CAV(solver="liblinear").fit(*labelled(np.ones((5, 2)), np.zeros((5, 2)))), "solver must be one of"),
        (lambda: CAV("mean_difference", solver="sklearn").fit(*labelled(np.ones((5, 2)), np.zeros((5, 2)))), "no scikit-learn solver"),
        (lambda: fit_cavs([(np.ones((5, 2)), np.zeros((5, 2))), (np.ones((5, 3)), np.zeros((5, 3)))]), "one width"),
        (lambda: fit_cavs([(np.ones((5, 2)), np.zeros((5, 2)))], seeds=[0, 1]), "2 seeds for 1 pairs"),
        (lambda: CAV().fit(*labelled(np.ones((6, 2)), np.ones((6, 2)))), "cannot be told apart"),
    ],
)
def test_bad_input_is_named(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()


def test_the_sklearn_solver_gives_the_per_pair_sgd_scores():
    rng = np.random.default_rng(6)
    randoms = [rng.normal(size=(30, 4)) for _ in range(3)]
    gradients = rng.normal(size=(25, 4))
    red = rng.normal(size=(30, 4)) + [2, 0, 0, 0]
    result = tcav({"red": {"mid": red}}, {"mid": randoms}, {"mid": gradients}, solver="sklearn").results[0]
    for r, random in enumerate(randoms):
        cav = CAV(random_state=r, solver="sklearn").fit(*labelled(red, random)).cav_
        assert np.allclose(result.cavs[r], cav) and result.scores[r] == np.mean(gradients @ cav > 0)
