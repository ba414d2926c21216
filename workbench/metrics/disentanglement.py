"""Disentanglement of representations against ground-truth factors, as the reference computes it.

Arrays are samples-first (scikit-learn's convention): codes (n_samples, n_codes) of floats,
factors (n_samples, n_factors) of integer labels. Defaults reproduce disentanglement_lib
(commit 86a644d4): 20-bin histogram discretisation, sklearn estimators with their settings.
Where the reference is unseeded, these functions take a seed; where it divides by zero or
breaks on current libraries, they raise a clear error or run, as each docstring says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.stats
from sklearn import ensemble, linear_model, metrics, preprocessing, svm
from sklearn.model_selection import train_test_split

from .boosting import fit_boosted_trees
from .information import discrete_entropy, discrete_mutual_info, histogram_discretize
from .validation import as_matrix, codes_and_factors


def _discretized(codes: np.ndarray, num_bins: int | None) -> np.ndarray:
    if num_bins is None:
        return as_matrix("codes", codes, integer=True)
    return histogram_discretize(codes, num_bins)


def _split(codes, factors, codes_test, factors_test, test_size: float, seed: int):
    """Train/test arrays: the given test set, else a seeded split of the data."""
    if (codes_test is None) != (factors_test is None):
        raise ValueError("give both codes_test and factors_test, or neither")
    if codes_test is not None:
        c_test, f_test = codes_and_factors(codes_test, factors_test, min_classes=1)
        if c_test.shape[1] != codes.shape[1] or f_test.shape[1] != factors.shape[1]:
            raise ValueError(
                f"codes_test/factors_test have {c_test.shape[1]} codes / {f_test.shape[1]} factors; "
                f"expected {codes.shape[1]} / {factors.shape[1]} as in codes/factors"
            )
        return codes, factors, c_test, f_test
    c_train, c_test, f_train, f_test = train_test_split(codes, factors, test_size=test_size, random_state=seed)
    for j in range(f_train.shape[1]):  # a rare class can leave the training part with one class only
        if len(np.unique(f_train[:, j])) < 2:
            raise ValueError(f"factors column {j} has one class in the training part of the split (test_size={test_size}, "
                             f"{len(f_train)} training samples); give more samples of its rarer values or a smaller test_size")
    return c_train, f_train, c_test, f_test


# --- MIG ---------------------------------------------------------------------------------------
def mig(codes, factors, num_bins: int | None = 20) -> float:
    """Mutual Information Gap: mean over factors of (MI_top1 - MI_top2) / H(factor).

    Source: Chen et al., "Isolating Sources of Disentanglement in VAEs", NeurIPS 2018;
    disentanglement_lib mig.py. num_bins=None uses codes as already discrete.
    Fixed: a constant factor (H = 0) divides by zero in the reference; here it raises.

    Raises:
        ValueError: constant factor, fewer than two codes, mismatched samples, NaN/inf.
    """
    c, f = codes_and_factors(codes, factors)
    if c.shape[1] < 2:
        raise ValueError(f"codes must have at least 2 columns for a gap between the top two, got {c.shape[1]}")
    mi = discrete_mutual_info(_discretized(c, num_bins), f)
    top = np.sort(mi, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / discrete_entropy(f)))


# --- Modularity and explicitness ---------------------------------------------------------------
def modularity_from_mi(mutual_information) -> float:
    """Modularity of a (n_codes, n_factors) MI matrix: per code
    1 - (sum theta^2 - max theta^2) / (max theta^2 (K - 1)); a code with no MI scores 0 and is
    still averaged.

    Source: Ridgeway & Mozer, "Learning Deep Disentangled Embeddings with the F-Statistic
    Loss", NeurIPS 2018; disentanglement_lib modularity_explicitness.py.
    """
    mi = as_matrix("mutual_information", mutual_information).astype(np.float64)
    if (mi < 0).any():
        raise ValueError("mutual_information must be non-negative")
    if mi.shape[1] < 2:
        raise ValueError("modularity needs at least 2 factors (columns of mutual_information)")
    squared = np.square(mi)
    top = squared.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - (squared.sum(axis=1) - top) / (top * (squared.shape[1] - 1.0))
    score[top == 0.0] = 0.0
    return float(np.mean(score))


def modularity(codes, factors, num_bins: int | None = 20) -> float:
    """Modularity of codes against factors (histogram-discretised MI; see modularity_from_mi)."""
    c, f = codes_and_factors(codes, factors)
    return modularity_from_mi(discrete_mutual_info(_discretized(c, num_bins), f))


def explicitness(codes, factors, codes_test=None, factors_test=None, test_size: float = 0.3, seed: int = 0) -> float:
    """Explicitness: mean over factors of the test ROC-AUC (macro over classes) of a logistic
    regression from all codes to the factor.

    Source: Ridgeway & Mozer 2018; disentanglement_lib modularity_explicitness.py
    (LogisticRegression() with default settings). Fixed: the reference binarises test labels
    by the classes present in the test set, which misaligns with the classifier's classes when
    one is missing; here labels are binarised by the classifier's classes.
    """
    c, f = codes_and_factors(codes, factors)
    c_train, f_train, c_test, f_test = _split(c, f, codes_test, factors_test, test_size, seed)
    scores = []
    for k in range(f.shape[1]):
        model = linear_model.LogisticRegression().fit(c_train, f_train[:, k])
        proba = model.predict_proba(c_test)
        if len(model.classes_) == 2:
            scores.append(metrics.roc_auc_score(f_test[:, k] == model.classes_[1], proba[:, 1]))
            continue
        truth = preprocessing.label_binarize(f_test[:, k], classes=model.classes_)
        present = truth.any(axis=0) & ~truth.all(axis=0)
        scores.append(metrics.roc_auc_score(truth[:, present], proba[:, present], average="macro"))
    return float(np.mean(scores))


# --- SAP -----------------------------------------------------------------------------------------
def sap(codes, factors, continuous_factors: bool = False, codes_test=None, factors_test=None, test_size: float = 0.3, seed: int = 0) -> float:
    """Separated Attribute Predictability: mean over factors of the gap between the two codes
    that predict it best.

    Scores per (code, factor): for discrete factors the test accuracy of a one-code linear SVM
    (LinearSVC(C=0.01, class_weight="balanced"), seeded here); for continuous factors the
    squared correlation. Source: Kumar et al., "Variational Inference of Disentangled Latent
    Concepts from Unlabeled Observations", ICLR 2018; disentanglement_lib sap_score.py.
    """
    c = as_matrix("codes", codes).astype(np.float64)
    f = as_matrix("factors", factors).astype(np.float64 if continuous_factors else np.int64)
    if not continuous_factors:
        c, f = codes_and_factors(c, f)
    elif len(c) != len(f):
        raise ValueError(f"codes has {len(c)} samples but factors has {len(f)}; expected the same number")
    elif constant := [j for j in range(f.shape[1]) if np.ptp(f[:, j]) == 0]:
        raise ValueError(f"factors column {constant[0]} is constant; a constant factor carries no information to measure")
    if c.shape[1] < 2:
        raise ValueError(f"codes must have at least 2 columns, got {c.shape[1]}")
    scores = np.zeros((c.shape[1], f.shape[1]))
    if continuous_factors:
        for i in range(c.shape[1]):
            for j in range(f.shape[1]):
                cov = np.cov(c[:, i], f[:, j], ddof=1)
                scores[i, j] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
    else:
        c_train, f_train, c_test, f_test = _split(c, f, codes_test, factors_test, test_size, seed)
        for i in range(c.shape[1]):
            for j in range(f.shape[1]):
                model = svm.LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
                model.fit(c_train[:, i : i + 1], f_train[:, j])
                scores[i, j] = np.mean(model.predict(c_test[:, i : i + 1]) == f_test[:, j])
    ranked = np.sort(scores, axis=0)
    return float(np.mean(ranked[-1] - ranked[-2]))


# --- IRS -----------------------------------------------------------------------------------------
def irs(codes, factors, diff_quantile: float = 0.99, num_bins: int | None = 20) -> float:
    """Interventional Robustness Score, the average score weighted by each code's maximal
    deviation; constant codes are dropped first (a representation with none left scores 0).

    Source: Suter et al., "Robustly Disentangled Causal Mechanisms", ICML 2019;
    disentanglement_lib irs.py (factors are histogram-discretised as there).
    """
    c, f = codes_and_factors(codes, factors)
    if not 0.0 < diff_quantile <= 1.0:
        raise ValueError(f"diff_quantile must lie in (0, 1], got {diff_quantile}")
    f = _discretized(f.astype(np.float64), num_bins)
    active = c[:, c.std(axis=0) > 0.0]
    if active.shape[1] == 0:
        return 0.0
    max_deviation = np.max(np.abs(active - active.mean(axis=0)), axis=0)
    deviations = np.zeros((active.shape[1], f.shape[1]))
    for k in range(f.shape[1]):
        values = np.unique(f[:, k])
        for value in values:
            group = active[f[:, k] == value]
            deviations[:, k] += np.percentile(np.abs(group - group.mean(axis=0)), q=diff_quantile * 100, axis=0)
        deviations[:, k] /= len(values)
    scores = (1.0 - deviations / max_deviation[:, None]).max(axis=1)
    return float(np.average(scores, weights=max_deviation) if max_deviation.sum() > 0 else scores.mean())


# --- DCI -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DCIResult:
    """DCI scores; `importance` is the (n_codes, n_factors) matrix they came from."""

    disentanglement: float
    completeness: float
    informativeness: float
    importance: np.ndarray


def _shares(importance: np.ndarray, axis: int) -> np.ndarray:
    """Each code's (axis=1) or factor's (axis=0) share of the total; uniform if all zero."""
    r = importance if importance.sum() != 0.0 else np.ones_like(importance)
    return r.sum(axis=axis) / r.sum()


def dci_disentanglement(importance) -> float:
    """Disentanglement of an importance matrix R (n_codes, n_factors): sum_i rho_i (1 - H_K(R_i.)),
    rho_i the code's share of total importance, entropy base K = n_factors (scipy, + 1e-11).

    Source: Eastwood & Williams, "A Framework for the Quantitative Evaluation of Disentangled
    Representations", ICLR 2018; disentanglement_lib dci.py.
    """
    r = _importance(importance)
    per_code = 1.0 - scipy.stats.entropy(r.T + 1e-11, base=r.shape[1])
    return float(np.sum(per_code * _shares(r, axis=1)))


def dci_completeness(importance) -> float:
    """Completeness of R: sum_j rho_j (1 - H_D(R_.j)), entropy base D = n_codes (see above)."""
    r = _importance(importance)
    per_factor = 1.0 - scipy.stats.entropy(r + 1e-11, base=r.shape[0])
    return float(np.sum(per_factor * _shares(r, axis=0)))


def _importance(importance) -> np.ndarray:
    r = as_matrix("importance", importance).astype(np.float64)
    if (r < 0).any():
        raise ValueError("importance must be non-negative")
    if min(r.shape) < 2:
        raise ValueError(f"importance must be at least 2x2 (n_codes, n_factors), got {r.shape}")
    return r


def _dci(codes, factors, codes_test, factors_test, test_size, seed, fit) -> DCIResult:
    c, f = codes_and_factors(codes, factors)
    c_train, f_train, c_test, f_test = _split(c, f, codes_test, factors_test, test_size, seed)
    importance = np.zeros((c.shape[1], f.shape[1]))
    accuracy = []
    for k in range(f.shape[1]):
        importance[:, k], model = fit(c_train, f_train[:, k])
        accuracy.append(np.mean(model.predict(c_test) == f_test[:, k]))
    return DCIResult(dci_disentanglement(importance), dci_completeness(importance), float(np.mean(accuracy)), importance)


def dci(codes, factors, codes_test=None, factors_test=None, test_size: float = 0.3, seed: int = 0) -> DCIResult:
    """DCI with gradient-boosted trees, as the reference: importance = |feature_importances_| of
    GradientBoostingClassifier() per factor; informativeness = mean test accuracy.

    Fixed: the reference's boosting is unseeded (results vary run to run); it is seeded here.
    """

    def fit(x, y):
        model = ensemble.GradientBoostingClassifier(random_state=seed).fit(x, y)
        return np.abs(model.feature_importances_), model

    return _dci(codes, factors, codes_test, factors_test, test_size, seed, fit)


def dci_fast(
    codes, factors, codes_test=None, factors_test=None, test_size: float = 0.3, seed: int = 0, max_bins: int = 256
) -> DCIResult:
    """DCI with the reference's boosted trees grown on histograms (`boosting.fit_boosted_trees`):
    the same stages, depth, loss, leaf values and impurity importance as `dci`, with splits at
    up to `max_bins` quantile edges per code. Deterministic (no seed needed); with
    `max_bins >= n_samples` it grows the exact trees; at 256 bins it is about 11x faster
    and D and C stay within about 0.01 of `dci` (benchmarks/metrics_speed.py)."""

    def fit(x, y):
        model = fit_boosted_trees(x, y, max_bins=max_bins)
        return model.importance, model

    return _dci(codes, factors, codes_test, factors_test, test_size, seed, fit)


# --- Unsupervised Gaussian scores ------------------------------------------------------------------
def _covariance(cov) -> np.ndarray:
    m = as_matrix("cov", cov).astype(np.float64)
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"cov must be a square covariance matrix, got shape {m.shape}")
    if not np.allclose(m, m.T):
        raise ValueError("cov must be symmetric")
    if (np.diag(m) <= 0).any():
        raise ValueError("cov must have a positive diagonal (no constant code)")
    return m


def gaussian_total_correlation(cov) -> float:
    """Total correlation of a Gaussian with covariance `cov`: 0.5 (sum log diag - log det).

    Source: disentanglement_lib unsupervised_metrics.py.
    """
    m = _covariance(cov)
    sign, logdet = np.linalg.slogdet(m)
    if sign <= 0:
        raise ValueError("cov must be positive definite")
    return float(0.5 * (np.sum(np.log(np.diag(m))) - logdet))


def gaussian_wasserstein_correlation(cov) -> float:
    """Squared 2-Wasserstein distance between N(0, cov) and N(0, diag(cov)):
    2 tr(cov) - 2 tr(sqrtm(cov diag(cov))). Source: disentanglement_lib unsupervised_metrics.py.
    """
    m = _covariance(cov)
    root = scipy.linalg.sqrtm(m * np.diag(m)[:, None])
    return float(2 * np.trace(m) - 2 * np.trace(np.real(root)))
