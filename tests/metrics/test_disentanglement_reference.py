"""Known answers from the reference implementations (disentanglement_lib 86a644d4), copied from
the project's shared/reference/metrics.json. Reference arrays are (columns, samples): transposed
here to samples-first."""

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.metrics import (
    dci_completeness,
    dci_disentanglement,
    discrete_mutual_info,
    histogram_discretize,
    mig,
    modularity,
    modularity_from_mi,
)

REFERENCE = json.loads((Path(__file__).parent / "reference" / "metrics.json").read_text())
LN2_LN10 = np.log(2) / np.log(10)
# The cases the reference file states as expressions.
MATRICES = {
    "5*eye(5)": 5 * np.eye(5),
    "zeros(10,10)": np.zeros((10, 10)),
    "vstack([5*eye(5), 5*eye(5)])": np.vstack([5 * np.eye(5), 5 * np.eye(5)]),
    "hstack([5*eye(5), 5*eye(5)])": np.hstack([5 * np.eye(5), 5 * np.eye(5)]),
}
VALUES = {"1 - 1/9": 1 - 1 / 9, "1 - ln 2 / ln 10": 1 - LN2_LN10}


def value(x):
    return VALUES[x] if isinstance(x, str) else x


def matrix(x):
    return MATRICES[x] if isinstance(x, str) else np.array(x, dtype=float)


def test_histogram_discretize():
    case = REFERENCE["histogram_discretize"]
    got = histogram_discretize(np.array(case["codes"]).T, case["num_bins"]).T
    assert np.array_equal(got, case["expected"])


def test_mutual_information_mig_and_modularity_with_identity_discretizer():
    case = REFERENCE["mig_identity_discretizer"]
    codes, factors = np.array(case["codes"]).T, np.array(case["factors"]).T
    mi = discrete_mutual_info(codes, factors)
    assert np.allclose(mi, case["mutual_information"], rtol=0, atol=case["mutual_information_tolerance"])
    assert mig(codes, factors, num_bins=None) == pytest.approx(case["mig"], abs=1e-9)
    assert modularity(codes, factors, num_bins=None) == pytest.approx(case["modularity"], abs=1e-9)


def test_dci_from_importance():
    case = REFERENCE["dci_from_importance"]
    assert dci_disentanglement(case["importance"]) == pytest.approx(case["disentanglement"], abs=1e-9)
    assert dci_completeness(case["importance"]) == pytest.approx(case["completeness"], abs=1e-9)


@pytest.mark.parametrize("name", list(REFERENCE["modularity_cases"])[1:])
def test_modularity_cases(name):
    case = REFERENCE["modularity_cases"][name]
    assert modularity_from_mi(matrix(case["mi"])) == pytest.approx(value(case["expected"]), abs=1e-9)


@pytest.mark.parametrize("name", list(REFERENCE["dci_importance_cases"])[1:])
def test_dci_importance_cases(name):
    case = REFERENCE["dci_importance_cases"][name]
    importance = matrix(case["importance"])
    assert dci_disentanglement(importance) == pytest.approx(value(case["disentanglement"]), abs=1e-9)
    assert dci_completeness(importance) == pytest.approx(value(case["completeness"]), abs=case.get("completeness_atol", 1e-9))
