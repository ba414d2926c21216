"""Many small linear classifiers fitted at once: the batched solver behind `fit_cavs`.

Each of k problems minimises, over weights w (d,) and an unpenalised intercept b,

    sum_i c_i loss(y_i (w . x_i + b)) + alpha / 2 * |w|^2,      c_i = 1 / n (the mean loss)

with labels y_i in {-1, +1}: the hinge loss (the linear SVM that scikit-learn's SGDClassifier
approaches with SGD, captum's and tensorflow-tcav's CAV classifier) or the logistic loss.
The problems are stacked into (k, n, d) arrays (shorter ones padded with rows of weight 0) and
solved together by damped Newton steps with a backtracking line search, one batched linear
solve per step, starting from the least-squares fit. The hinge is smoothed quadratically over a
band of width eps below the margin, and eps is lowered tenfold at a time to 1e-4 (each band
warm-started from the last): the objective then lies within eps / 2 of the hinge optimum, and
the weights within about 1e-3 (relative) of the exact SVM, where SGD's runs differ from one
another by several per cent. Where d exceeds n, each problem is first rotated into
the row space of its examples (thin SVD): the optimal w lies there, so nothing is lost and each
Newton system has at most n + 1 unknowns.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.special import expit

Loss = Literal["hinge", "logistic"]
_HINGE_BANDS = (1.0, 1e-1, 1e-2, 1e-3, 1e-4)
_STEPS = 0.5 ** np.arange(40)  # backtracking line search: 1, 1/2, 1/4, ...


def _loss(margins: np.ndarray, loss: Loss, eps: float, order: int) -> np.ndarray:
    """The loss of margins m (order 0) or its first or second derivative with respect to m."""
    if loss == "logistic":
        if order == 0:
            return np.logaddexp(0.0, -margins)
        return -expit(-margins) if order == 1 else expit(margins) * expit(-margins)
    u = 1.0 - margins  # the smoothed hinge: 0 above the margin, linear far below, quadratic between
    if order == 0:
        return np.where(u <= 0, 0.0, np.where(u >= eps, u - eps / 2, u * u / (2 * eps)))
    if order == 1:
        return -np.clip(u / eps, 0.0, 1.0)
    return np.where((u > 0) & (u < eps), 1.0 / eps, 0.0)


def _newton(a, y, weights, reg, theta, loss: Loss, eps: float, tol: float = 1e-13, max_iter: int = 100) -> np.ndarray:
    """Damped Newton on all problems at once; a problem drops out once its Newton decrement
    vanishes (or no step length decreases it further)."""
    theta = theta.copy()
    todo = np.arange(len(a))
    eye = np.eye(a.shape[2])
    for _ in range(max_iter):
        if not todo.size:
            break
        a_, y_, w_, reg_, theta_ = a[todo], y[todo], weights[todo], reg[todo], theta[todo]
        margins = y_ * np.einsum("knp,kp->kn", a_, theta_)
        penalty = 0.5 * np.einsum("kp,kp->k", reg_ * theta_, theta_)
        f0 = np.einsum("kn,kn->k", w_, _loss(margins, loss, eps, 0)) + penalty
        grad = np.einsum("kn,knp->kp", w_ * y_ * _loss(margins, loss, eps, 1), a_) + reg_ * theta_
        hess = np.matmul(a_.transpose(0, 2, 1), a_ * (w_ * _loss(margins, loss, eps, 2))[..., None]) + reg_[:, :, None] * eye
        # a small ridge keeps the system solvable where the unpenalised intercept has no curvature
        ridge = 1e-10 * (1.0 + np.abs(np.diagonal(hess, axis1=1, axis2=2)).max(1))
        step = -np.linalg.solve(hess + ridge[:, None, None] * eye, grad[..., None])[..., 0]
        slope = np.einsum("kp,kp->k", grad, step)  # negative: a descent direction
        # the objective along the step for every candidate length at once (the penalty is quadratic in t)
        t = _STEPS[None, :]
        moved = margins[:, None, :] + t[..., None] * (y_ * np.einsum("knp,kp->kn", a_, step))[:, None, :]
        f = (
            np.einsum("kn,ktn->kt", w_, _loss(moved, loss, eps, 0)) + penalty[:, None]
            + t * np.einsum("kp,kp->k", reg_ * theta_, step)[:, None] + 0.5 * t**2 * np.einsum("kp,kp->k", reg_ * step, step)[:, None]
        )
        good = f <= f0[:, None] + 1e-4 * t * slope[:, None]
        moving = good.any(1) & (-slope > tol * (1.0 + np.abs(f0)))
        first = np.argmax(good, axis=1)[moving]
        theta[todo[moving]] = theta_[moving] + _STEPS[first][:, None] * step[moving]
        todo = todo[moving]
    return theta


def fit_linear(x: np.ndarray, y: np.ndarray, mask: np.ndarray, loss: Loss, alpha: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit k linear classifiers together.

    Args:
        x: (k, n, d) examples; y: (k, n) labels in {-1, +1}; mask: (k, n), 1 for a real example
            and 0 for padding.
        loss: "hinge" (linear SVM) or "logistic".
        alpha: the L2 penalty, one for all problems or (k,).

    Returns:
        (coef (k, d), intercept (k,)); the decision function is x . coef + intercept, positive
        for label +1.
    """
    x, y, mask = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(mask, np.float64)
    k, n, d = x.shape
    x = x * mask[..., None]
    basis = None
    if d > n:  # rotate into the row space of the examples (the optimal w lies in it)
        _, _, basis = np.linalg.svd(x, full_matrices=False)  # basis: (k, n, d), orthonormal rows
        x = np.einsum("knd,krd->knr", x, basis)
    a = np.concatenate([x, mask[..., None]], axis=2)  # the intercept as a last feature
    weights = mask / mask.sum(1, keepdims=True)
    reg = np.zeros((k, a.shape[2]))
    reg[:, :-1] = np.broadcast_to(np.asarray(alpha, np.float64), (k,))[:, None]
    # start from the regularised least-squares fit of the labels (one solve), not from zero
    gram = np.matmul(a.transpose(0, 2, 1), a * weights[..., None]) + reg[:, :, None] * np.eye(a.shape[2])
    ridge = 1e-10 * (1.0 + np.abs(np.diagonal(gram, axis1=1, axis2=2)).max(1))
    theta = np.linalg.solve(gram + ridge[:, None, None] * np.eye(a.shape[2]), np.einsum("kn,knp->kp", weights * y, a)[..., None])[..., 0]
    bands = _HINGE_BANDS if loss == "hinge" else (0.0,)
    for eps in bands:
        tol = 1e-12 if eps == bands[-1] else 1e-8  # the intermediate bands only warm-start the next: a loose tolerance will do
        theta = _newton(a, y, weights, reg, theta, loss, eps, tol=tol)
    coef, intercept = theta[:, :-1], theta[:, -1]
    if basis is not None:
        coef = np.einsum("kr,krd->kd", coef, basis)
    return coef, intercept
