import numpy as np
import pytest

from workbench.concepts import CAV, labelled, directional_derivatives, magnitude_score, sign_count_score, tcav
from workbench.concepts.tcav import set_level_p_value

rng = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def fresh_rng():
    """Each test draws from its own generator, so none depends on the tests run before it."""
    global rng
    rng = np.random.default_rng(0)
D = 6


def planted(direction: int, n: int = 60, shift: float = 3.0) -> np.ndarray:
    x = rng.normal(size=(n, D))
    x[:, direction] += shift
    return x


def randoms(k: int = 6, n: int = 60) -> list[np.ndarray]:
    return [rng.normal(size=(n, D)) for _ in range(k)]


@pytest.mark.parametrize("method", ["sgd", "logistic", "mean_difference"])
def test_cav_recovers_the_planted_direction(method):
    cav = CAV(method).fit(*labelled(planted(0, shift=5.0), rng.normal(size=(60, D))))
    assert cav.cav_[0] > 0.8 and np.isclose(np.linalg.norm(cav.cav_), 1.0)
    assert cav.accuracy_ > 0.9 and list(cav.classes_) == [0, 1]


def test_directional_derivative_scores_known_answers():
    d = directional_derivatives(np.array([[1.0, 0], [-1, 0], [2, 0]]), np.array([1.0, 0]))
    assert np.allclose(d, [1, -1, 2])
    assert sign_count_score(d) == pytest.approx(2 / 3)
    assert magnitude_score(d) == pytest.approx(3 / 4)
    assert magnitude_score(np.zeros(3)) == 0.0


def test_tcav_flags_the_planted_concept_and_not_the_unrelated_one():
    # In 64 dimensions a random-vs-random CAV is nearly orthogonal to the gradients' common
    # direction, so the random scores gather near 0.5 and the planted concept stands out.
    wide = np.random.default_rng(5)
    d = 64

    def concept(direction: int) -> np.ndarray:
        x = wide.normal(size=(60, d))
        x[:, direction] += 3.0
        return x

    gradients = wide.normal(size=(100, d)) / 3
    gradients[:, 0] += 1.0  # the target grows along feature 0
    frame = tcav({"red": {"mid": concept(0)}, "square": {"mid": concept(1)}}, {"mid": [wide.normal(size=(60, d)) for _ in range(10)]}, {"mid": gradients}).to_frame()
    red, square = frame.set_index("concept").loc["red"], frame.set_index("concept").loc["square"]
    assert red.score > 0.95 and red.significant and red.p_value < 0.01
    assert not square.significant
    assert set(frame.columns) >= {"concept", "layer", "score", "magnitude", "random_score", "cav_accuracy", "p_value", "significant"}


def test_set_level_p_value_known_answer():
    # t = 0.4 / (0.1 * sqrt(4/3)) = sqrt(12) with 2 degrees of freedom, whose tail is
    # P(T > t) = (1 - t / sqrt(2 + t^2)) / 2, so p = 1 - sqrt(12 / 14)
    assert set_level_p_value(0.9, np.array([0.4, 0.5, 0.6])) == pytest.approx(1 - (12 / 14) ** 0.5, rel=1e-12)
    assert set_level_p_value(0.5, np.array([0.5, 0.5, 0.5])) == 1.0
    assert set_level_p_value(0.7, np.array([0.5, 0.5, 0.5])) == 0.0


def test_random_sets_posing_as_concepts_are_flagged_at_the_nominal_rate():
    # Every "concept" here is one more random set. A per-run t-test treats the R scores that
    # share the posing set as independent and flags 28 per cent of these at p < 0.05.
    local = np.random.default_rng(11)
    width = 16
    gradients = local.normal(size=(80, width)) * 0.5 + np.eye(width)[0] * 0.3
    pool = {"mid": [local.normal(size=(12, width)) for _ in range(20)]}
    posing = {f"posing{i}": {"mid": local.normal(size=(12, width))} for i in range(100)}
    p_values = tcav(posing, pool, {"mid": gradients}).to_frame().p_value
    assert (p_values < 0.05).mean() <= 0.08
    assert (p_values > 0.5).mean() > 0.3  # and not by making every p-value large


def test_bonferroni_counts_every_concept_and_layer():
    gradients = rng.normal(size=(100, D))
    concepts = {f"c{i}": {"a": planted(i % D, shift=0.5), "b": planted(i % D, shift=0.5)} for i in range(3)}
    frame = tcav(concepts, {"a": randoms(), "b": randoms()}, {"a": gradients, "b": gradients}).to_frame()
    assert len(frame) == 6
    assert (frame.significant == (frame.p_value * 6 < 0.05)).all()


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: CAV().fit(*labelled(np.ones((1, D)), np.ones((5, D)))), "at least 2"),
        (lambda: CAV().fit(*labelled(np.full((5, D), np.nan), np.ones((5, D)))), "NaN or inf"),
        (lambda: CAV().fit(*labelled(np.ones((5, D)), np.ones((5, D + 1)))), "features"),
        (lambda: CAV("svm").fit(*labelled(np.ones((5, D)), np.ones((5, D)))), "method must be one of"),
        (lambda: tcav({"red": {"mid": planted(0)}}, {"up": randoms()}, {"mid": np.ones((3, D))}), "missing from random_sets; it has up"),
        (lambda: tcav({"red": {"mid": planted(0)}}, {"mid": randoms(2)}, {"mid": np.ones((3, D))}), "at least 3 random sets"),
    ],
)
def test_bad_input_is_named(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()


def test_cav_is_a_scikit_learn_estimator():
    from sklearn.base import clone

    X, y = labelled(planted(0, shift=5.0), rng.normal(size=(60, D)))
    cav = CAV("logistic", alpha=0.1, random_state=3).fit(X, y)
    twin = clone(cav)
    assert twin.get_params() == {"method": "logistic", "alpha": 0.1, "test_size": 0.33, "random_state": 3, "solver": "batched"}
    assert not hasattr(twin, "cav_") and np.allclose(twin.fit(X, y).cav_, cav.cav_)
    scores = cav.decision_function(X)
    assert scores.shape == (len(X),) and np.array_equal(cav.predict(X), (scores > 0).astype(int))
    assert (cav.predict(X) == y).mean() > 0.9
    with pytest.raises(ValueError, match="y must be 1 for the concept's examples and 0"):
        CAV().fit(X, y + 1)
    with pytest.raises(ValueError, match="one label per row"):
        CAV().fit(X, y[:-1])


def test_sets_that_differ_only_by_rounding_noise_are_refused():
    noise = np.random.default_rng(1)
    same = np.ones((20, D))
    for method in ("sgd", "logistic", "mean_difference"):
        with pytest.raises(ValueError, match="cannot be told apart"):
            CAV(method).fit(*labelled(same + 1e-10 * noise.normal(size=same.shape), same + 1e-10 * noise.normal(size=same.shape)))
    # a real but small difference is kept
    CAV().fit(*labelled(same + 1e-3 * noise.normal(size=same.shape) + 1e-2, same + 1e-3 * noise.normal(size=same.shape)))
