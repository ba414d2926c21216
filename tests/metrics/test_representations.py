import numpy as np
import pandas as pd
import pytest

from workbench.metrics import cosine_similarity_matrix, nearest_tokens, norms, probe_leakage


def test_cosine_and_norms_known_answers():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert np.allclose(cosine_similarity_matrix(a), [[1, 1 / np.sqrt(2)], [1 / np.sqrt(2), 1]])
    assert np.allclose(cosine_similarity_matrix(a, np.array([[0.0, 2.0]])), [[0.0], [1 / np.sqrt(2)]])
    assert np.allclose(norms(a), [1, np.sqrt(2)])
    with pytest.raises(ValueError, match="zero vector"):
        cosine_similarity_matrix(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="width 2 but b has width 3"):
        cosine_similarity_matrix(a, np.ones((1, 3)))


def test_nearest_tokens_ranks_by_cosine():
    vocabulary = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    frame = nearest_tokens(np.array([[2.0, 0.1]]), vocabulary, ["red", "blue", "purple"], k=2, names=["S*"])
    assert list(frame.token) == ["red", "purple"] and list(frame["rank"]) == [1, 2]
    assert frame.similarity.iloc[0] > frame.similarity.iloc[1]
    with pytest.raises(ValueError, match="tokens has 2 entries but vocabulary has 3"):
        nearest_tokens(np.ones((1, 2)), vocabulary, ["a", "b"])


def test_probe_leakage_finds_the_carrier_of_each_factor():
    rng = np.random.default_rng(0)
    n = 400
    color, shape = rng.integers(0, 3, n), rng.integers(0, 2, n)
    primary = np.eye(3)[color] + 0.05 * rng.normal(size=(n, 3))  # carries colour only
    auxiliary = np.eye(2)[shape] + 0.05 * rng.normal(size=(n, 2))  # carries shape only
    factors = pd.DataFrame({"color": np.array(["red", "green", "blue"])[color], "shape": np.array(["circle", "square"])[shape]})
    result = probe_leakage({"w0": primary, "w1": auxiliary}, factors)
    assert result.factors == ("color", "shape")
    assert result.accuracy[0, 0] > 0.95 and result.accuracy[1, 1] > 0.95
    assert result.above_chance[0, 1] < 0.15 and result.above_chance[1, 0] < 0.15
    assert 0.3 < result.chance[0] < 0.5
    frame = result.to_frame()
    assert len(frame) == 4 and {"representation", "factor", "accuracy", "chance", "above_chance"} <= set(frame.columns)
    with pytest.raises(ValueError, match=r"representations\['w0'\] has 10 samples but factors has 400"):
        probe_leakage({"w0": primary[:10]}, factors)
