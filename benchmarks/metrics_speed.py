"""How fast are the metrics? Writes benchmarks/results/metrics_speed.json.

N = 10,000 samples, 10 codes, 3 factors: codes are a noisy, partly mixed, monotone function
of the factors plus nuisance codes, so every metric has something to find. Exact DCI
(gradient-boosted trees, as the reference) is compared with the fast estimator.

    python benchmarks/metrics_speed.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import workbench
from workbench import metrics
from workbench.files import atomic_path

RESULT = Path(__file__).parent / "results" / "metrics_speed.json"


def synthetic(n: int, n_codes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(0, k, n) for k in (5, 4, 3)], axis=1)
    codes = rng.normal(size=(n, n_codes))
    codes[:, 0] += 1.5 * factors[:, 0]
    codes[:, 1] += np.tanh(factors[:, 1] - 1.5) * 3
    codes[:, 2] += 2.0 * factors[:, 2] + 0.5 * factors[:, 0]
    codes[:, 3] += 0.7 * factors[:, 1]
    return codes, factors


def timed(fn, *args, **kwargs):
    tic = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    codes, factors = synthetic(args.n)
    seconds, values = {}, {}
    for name, fn in {
        "mig": metrics.mig,
        "modularity": metrics.modularity,
        "explicitness": metrics.explicitness,
        "sap": metrics.sap,
        "irs": metrics.irs,
        "infomec": metrics.infomec,
    }.items():
        value, seconds[name] = timed(fn, codes, factors)
        values[name] = value if isinstance(value, float) else {k: float(getattr(value, k)) for k in ("infom", "infoe", "infoc")}
    cov = np.cov(codes, rowvar=False)
    values["gaussian_total_correlation"], seconds["gaussian_total_correlation"] = timed(metrics.gaussian_total_correlation, cov)
    values["gaussian_wasserstein_correlation"], seconds["gaussian_wasserstein_correlation"] = timed(metrics.gaussian_wasserstein_correlation, cov)
    exact, exact_s = timed(metrics.dci, codes, factors)
    fast, fast_s = timed(metrics.dci_fast, codes, factors)
    seconds["dci_fast"] = fast_s
    result = {
        "seconds": seconds,
        "values": values,
        "dci_exact_s": exact_s,
        "dci_fast_s": fast_s,
        "dci_speedup": exact_s / fast_s,
        "dci_fast_abs_diff": max(abs(exact.disentanglement - fast.disentanglement), abs(exact.completeness - fast.completeness)),
        "dci_exact": {k: float(getattr(exact, k)) for k in ("disentanglement", "completeness", "informativeness")},
        "dci_fast": {k: float(getattr(fast, k)) for k in ("disentanglement", "completeness", "informativeness")},
        "all_under_1s_except_exact_dci": all(s < 1.0 for s in seconds.values()),
        "settings": {"n_samples": args.n, "n_codes": codes.shape[1], "n_factors": factors.shape[1]},
        "versions": {"workbench": workbench.__version__},
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("seconds", "dci_exact_s", "dci_fast_s", "dci_fast_abs_diff")}, indent=1))


if __name__ == "__main__":
    main()
