import numpy as np
import pytest
import torch

from workbench.metrics import iou, minmax_normalize, threshold_iou


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


def test_threshold_iou_known_answer():
    heat = np.array([[0.0, 0.39], [0.41, 1.0]]) * 10 + 3  # normalised: [[0, .39], [.41, 1]]
    mask = np.array([[0, 1], [1, 1]], bool)
    assert threshold_iou(heat, mask, tau=0.4) == pytest.approx(2 / 3)
    assert threshold_iou(heat, mask, tau=0.3) == 1.0
    with pytest.raises(ValueError, match="tau"):
        threshold_iou(heat, mask, tau=1.5)
