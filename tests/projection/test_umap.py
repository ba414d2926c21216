import json
from pathlib import Path

import numpy as np
import pytest

from workbench.projection import Projection, curve_parameters

REFERENCE = json.loads((Path(__file__).parents[1] / "metrics" / "reference" / "metrics.json").read_text())["umap_ab"]


@pytest.mark.parametrize("min_dist", [0.0, 0.1, 0.5])
def test_curve_parameters_match_umap_learn(min_dist):
    a, b = curve_parameters(min_dist)
    assert np.allclose((a, b), REFERENCE[f"min_dist_{min_dist}"], atol=1e-6)


@pytest.fixture(scope="module")
def clusters():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3] * 10
    points = np.vstack([c + rng.normal(size=(30, 8)) for c in centres])
    return points, np.repeat(["w0", "w1", "w2"], 30)


@pytest.mark.slow
def test_projection_separates_clusters_reproducibly_and_transforms(clusters):
    points, roles = clusters
    a = Projection(n_neighbors=10, random_state=1).fit(points, labels={"role": roles})
    b = Projection(n_neighbors=10, random_state=1).fit(points, labels={"role": roles})
    assert np.allclose(a.embedding_, b.embedding_)
    frame = a.to_frame()
    assert list(frame.columns) == ["x", "y", "role"] and len(frame) == 90
    centres = frame.groupby("role")[["x", "y"]].mean().to_numpy()
    spread = frame.groupby("role")[["x", "y"]].std().to_numpy().max()
    assert np.min([np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i)]) > 3 * spread
    placed = a.transform(points[:5] + 0.01)
    assert placed.shape == (5, 2)
    assert np.linalg.norm(placed.mean(0) - centres[0]) < np.linalg.norm(placed.mean(0) - centres[1])


def test_bad_input(clusters):
    points, roles = clusters
    with pytest.raises(ValueError, match="more points than n_neighbors"):
        Projection(n_neighbors=15).fit(points[:10])
    with pytest.raises(ValueError, match="labels have 3 rows for 90 points"):
        Projection().fit(points, labels={"role": roles[:3]})
    with pytest.raises(RuntimeError, match="fit\\(\\) before transform"):
        Projection().transform(points)
    with pytest.raises(ValueError, match="labels may not be named 'x' or 'y'"):
        Projection().fit(points, labels={"x": roles})


def test_the_fewest_points_umap_can_place_are_projected(clusters):
    points, _ = clusters
    for n_neighbors in (2, 3):  # n_neighbors + 1 points: 3 (too few for a spectral start) and 4
        frame = Projection(n_neighbors=n_neighbors).fit(points[: n_neighbors + 1]).to_frame()
        assert len(frame) == n_neighbors + 1 and np.isfinite(frame[["x", "y"]].to_numpy()).all()
