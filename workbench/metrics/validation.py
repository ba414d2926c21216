"""Argument checks shared by the metrics: one clear ValueError naming the argument."""

from __future__ import annotations

import numpy as np


def as_matrix(name: str, x, integer: bool = False) -> np.ndarray:
    """`x` as a finite 2-D array (n_samples, n_columns); 1-D becomes one column."""
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n_samples, n_columns), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) and not np.issubdtype(a.dtype, np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf; expected finite values")
    if integer and np.issubdtype(a.dtype, np.floating):
        if not np.equal(np.mod(a, 1), 0).all():
            raise ValueError(f"{name} must hold integer labels, got non-integer values")
        a = a.astype(np.int64)
    return a


def codes_and_factors(codes, factors, min_classes: int = 2, codes_name: str = "codes") -> tuple[np.ndarray, np.ndarray]:
    """Check codes (n_samples, n_codes) and integer factors (n_samples, n_factors).

    Raises:
        ValueError: on mismatched sample counts, NaN/inf, non-integer factors, or a factor
            with fewer than `min_classes` distinct values.
    """
    c = as_matrix(codes_name, codes)
    f = as_matrix("factors", factors, integer=True)
    if len(c) != len(f):
        raise ValueError(f"{codes_name} has {len(c)} samples but factors has {len(f)}; expected the same number")
    for j in range(f.shape[1]):
        n = len(np.unique(f[:, j]))
        if n < min_classes:
            raise ValueError(
                f"factors column {j} has {n} distinct value(s); expected at least {min_classes} "
                "(a constant factor carries no information to measure)"
            )
    return c.astype(np.float64), f
