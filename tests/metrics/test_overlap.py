import numpy as np
import pytest
import torch

from workbench.metrics import iou, minmax_normalize


def test_minmax_known_answer():
    a = np.array([[1.0, 3.0], [5.0, 2.0]])
    assert np.allclose(minmax_normalize(a), [[0.0, 0.5], [1.0, 0.25]])
    assert np.array_equal(minmax_normalize(np.full((2, 2), 7.0)), np.zeros((2, 2)))
    batched = minmax_normalize(torch.stack([torch.tensor(a), torch.tensor(a) * 2 + 1]))
    assert np.allclose(batched[0], batched[1])


def test_iou_known_answers():
    a = np.array([[1, 1, 0], [0, 0, 0]], bool)
    b = np.array([[0, 1, 1], [0, 0, 0]], bool)
    assert iou(a, b) == pytest.approx(1 / 3)
    assert iou(a, a) == 1.0
    assert iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        iou(a, a.T)


def test_thresholded_iou_with_a_mask_known_answer():
    heat = np.array([[0.0, 0.39], [0.41, 1.0]]) * 10 + 3  # normalised: [[0, .39], [.41, 1]]
    mask = np.array([[0, 1], [1, 1]], bool)
    assert thresholded_iou(heat, mask, tau=0.4) == pytest.approx(2 / 3)
    assert thresholded_iou(heat, mask, tau=0.3) == 1.0
    with pytest.raises(ValueError, match="tau"):
        thresholded_iou(heat, mask, tau=1.5)


from workbench.metrics import (  # noqa: E402
    dice,
    histogram_intersection,
    js_divergence,
    leakage_matrix,
    mass_inside,
    overlap_matrix,
    soft_iou,
    symmetric_kl,
    thresholded_iou,
)

A = np.array([[1.0, 0.0], [0.0, 1.0]])
B = np.array([[1.0, 1.0], [0.0, 0.0]])


def test_pairwise_known_answers():
    assert soft_iou(A, B) == pytest.approx(0.5)  # (1 + 1) / (2 + 2 - 1 + 1)
    assert soft_iou(A, A) == pytest.approx(1.0)
    assert dice(A, B) == pytest.approx(0.5)  # 2 * 1 / 4
    assert histogram_intersection(A, B) == pytest.approx(0.25)  # 1 / 4
    assert thresholded_iou(A, B) == pytest.approx(1 / 3)
    assert js_divergence(A, A) == pytest.approx(0.0, abs=1e-12)
    assert js_divergence(np.array([[1.0, 0.0]] * 2), np.array([[0.0, 1.0]] * 2)) == pytest.approx(np.log(2), abs=1e-6)


def test_symmetric_kl_known_answer():
    a = np.ones((2, 2))
    b = np.array([[3.0, 1.0], [2.0, 2.0]])
    expected = 0.25 * np.log(4 / 3) + (3 / 8 * np.log(1.5) + 1 / 8 * np.log(0.5))
    assert symmetric_kl(a, b, eps=0.0) == pytest.approx(expected, rel=1e-12)
    assert symmetric_kl(a, a) == pytest.approx(0.0, abs=1e-12)


def test_mass_inside_and_leakage_matrix_known_answers():
    assert mass_inside(A, B.astype(bool)) == pytest.approx(0.5)
    words = np.array([[[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 3.0]]])
    regions = np.array([[[1, 1], [0, 0]], [[0, 0], [1, 1]]], bool)
    assert np.allclose(leakage_matrix(words, regions), np.eye(2))
    half = np.array([[[1.0, 1.0], [1.0, 1.0]]])
    batch = leakage_matrix(np.stack([words[:1], half]), np.stack([regions, regions]))
    assert np.allclose(batch, [[0.75, 0.25]])  # mean of [1, 0] and [0.5, 0.5]


def test_overlap_matrix_of_all_word_pairs():
    m = overlap_matrix([A, B, A])
    assert m.shape == (3, 3) and np.allclose(np.diag(m), 1.0)
    assert m[0, 1] == pytest.approx(soft_iou(A, B)) and m[0, 2] == pytest.approx(1.0)
    assert np.allclose(m, m.T)
    assert np.allclose(overlap_matrix(np.stack([A, B]), metric=histogram_intersection), [[0.5, 0.25], [0.25, 0.5]])


def test_batched_maps_give_arrays():
    scores = soft_iou(np.stack([A, A]), np.stack([B, A]))
    assert np.allclose(scores, [0.5, 1.0])


@pytest.mark.parametrize(
    "a, b, fragment",
    [
        (-A, B, "a has negative values"),
        (A, np.full((2, 2), np.nan), "b contains NaN or inf"),
        (A, np.ones((3, 3)), "differ in spatial shape"),
        (np.ones(3), B, r"shape \(\.\.\., y, x\)"),
    ],
)
def test_bad_maps_are_named(a, b, fragment):
    with pytest.raises(ValueError, match=fragment):
        soft_iou(a, b)


def test_mass_moved_is_the_total_variation_over_regions():
    from workbench.metrics import mass_moved

    left = np.zeros((4, 4), bool)
    left[:, :2] = True
    regions = np.stack([left, ~left])
    before = np.where(left, 3.0, 1.0)  # 6/8 of the mass on the left half
    after = np.where(left, 1.0, 1.0)  # 1/2 on each
    assert mass_moved(before, after, regions) == pytest.approx(0.25)
    assert mass_moved(before, before, regions) == 0.0
    assert mass_moved(np.where(left, 1.0, 0.0), np.where(left, 0.0, 1.0), regions) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"regions must be boolean masks \(regions, y, x\)"):
        mass_moved(before, after, left)


def test_distribution_overlap_known_answers():
    from workbench.metrics import distribution_overlap

    a = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert distribution_overlap(a, 3 * a) == pytest.approx(1.0)  # equal up to scale
    assert distribution_overlap(a, a[::-1]) == pytest.approx(0.0, abs=1e-6)  # disjoint
    assert distribution_overlap(a, np.ones((2, 2))) == pytest.approx(0.5)  # min(1/2, 1/4) twice
