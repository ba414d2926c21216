"""InfoMEC: information-theoretic modularity, explicitness and compactness.

Source: Hsu et al., "Disentanglement via Latent Quantization", NeurIPS 2023, and its code
(disentangle/metrics/infomec.py). With NMI[i, j] = I(factor_i; code_j) / H(factor_i) over the
active codes (S factors, L active codes):

    InfoM = (mean_j max_i NMI / sum_i NMI - 1/S) / (1 - 1/S)
    InfoC = (mean_i max_j NMI / sum_j NMI - 1/L) / (1 - 1/L)
    InfoE = mean_i (H_null - H_pred) / H_null, log losses of an unpenalised multinomial
            logistic regression from all codes (one-hot if discrete, standardised if not) to
            factor i, and of the same model on all-zero inputs.

A code is active if its range is > 0 (discrete) or > 1/20 of the largest range (continuous).
Continuous MI uses the k-NN estimator of sklearn's mutual_info_classif (k = 10) on standardised
codes, computed by sorting (knn_information.py).
Fixed: the reference passes `multi_class`, which current scikit-learn no longer accepts (the
multinomial model is now its only behaviour) and `penalty=None` (now C=inf); the k-NN MI
estimator's jitter is seeded here; fewer than two factors or active codes, where the
reference divides by zero, raise a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn import linear_model, metrics, preprocessing

from .knn_information import knn_mutual_information
from .validation import codes_and_factors


@dataclass(frozen=True)
class InfoMECResult:
    """InfoM, InfoE, InfoC; `nmi` (n_factors, n_codes) and the `active` codes they used."""

    infom: float
    infoe: float
    infoc: float
    nmi: np.ndarray
    active: np.ndarray


def _labels(column: np.ndarray) -> np.ndarray:
    return preprocessing.LabelEncoder().fit_transform(column)


def normalized_mutual_information(codes, factors, discrete_latents: bool = False, seed: int = 0) -> np.ndarray:
    """(n_factors, n_codes): I(factor; code) / H(factor), in nats over nats."""
    c, f = codes_and_factors(codes, factors)
    sources = np.stack([_labels(f[:, i]) for i in range(f.shape[1])], axis=1)
    nmi = np.empty((f.shape[1], c.shape[1]))
    standardized = preprocessing.StandardScaler().fit_transform(c)
    for i in range(f.shape[1]):
        if discrete_latents:
            nmi[i] = [metrics.mutual_info_score(sources[:, i], _labels(c[:, j])) for j in range(c.shape[1])]
        else:
            nmi[i] = knn_mutual_information(standardized, sources[:, i], n_neighbors=10, seed=seed)
        nmi[i] /= metrics.mutual_info_score(sources[:, i], sources[:, i])
    return nmi


def _log_loss(x: np.ndarray, y: np.ndarray) -> float:
    model = linear_model.LogisticRegression(C=np.inf, class_weight="balanced", solver="lbfgs", max_iter=100, tol=1e-4)
    model.fit(x, y)
    return metrics.log_loss(y, model.predict_proba(x), labels=model.classes_)


def info_explicitness(codes, factors, discrete_latents: bool = False) -> float:
    """InfoE alone (see the module docstring)."""
    c, f = codes_and_factors(codes, factors)
    x = preprocessing.OneHotEncoder().fit_transform(c).toarray() if discrete_latents else preprocessing.StandardScaler().fit_transform(c)
    null = np.zeros_like(c)
    scores = []
    for i in range(f.shape[1]):
        y = _labels(f[:, i])
        marginal = _log_loss(null, y)
        scores.append((marginal - _log_loss(x, y)) / marginal)
    return float(np.mean(scores))


def infomec(codes, factors, discrete_latents: bool = False, seed: int = 0) -> InfoMECResult:
    """InfoM, InfoE and InfoC of codes (n_samples, n_codes) against factors (n_samples, n_factors).

    Raises:
        ValueError: fewer than two factors or two active codes, a constant factor, mismatched
            samples, NaN/inf.
    """
    c, f = codes_and_factors(codes, factors)
    if f.shape[1] < 2:
        raise ValueError(f"infomec needs at least 2 factors, got {f.shape[1]}")
    nmi = normalized_mutual_information(c, f, discrete_latents, seed)
    ranges = c.max(axis=0) - c.min(axis=0)
    active = ranges > 0 if discrete_latents else ranges > ranges.max() / 20
    if active.sum() < 2:
        raise ValueError(f"infomec needs at least 2 active codes, got {int(active.sum())} (codes with a range)")
    pruned = nmi[:, active]
    n_sources, n_active = pruned.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        infom = (np.mean(pruned.max(axis=0) / pruned.sum(axis=0)) - 1 / n_sources) / (1 - 1 / n_sources)
        infoc = (np.mean(pruned.max(axis=1) / pruned.sum(axis=1)) - 1 / n_active) / (1 - 1 / n_active)
    return InfoMECResult(float(infom), info_explicitness(c, f, discrete_latents), float(infoc), nmi, active)
