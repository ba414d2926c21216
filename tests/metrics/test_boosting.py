"""The histogram booster grows sklearn's GradientBoostingClassifier trees when every value has a bin."""

import numpy as np
import pytest
import scipy.special
from sklearn.ensemble import GradientBoostingClassifier

from workbench.metrics.boosting import fit_boosted_trees

rng = np.random.default_rng(1)
N = 2000
LABELS3 = rng.integers(0, 3, N)
CODES = rng.normal(size=(N, 4))
CODES[:, 0] += LABELS3
CODES[:, 2] += 0.5 * LABELS3


@pytest.mark.parametrize("classes", [2, 3])
def test_matches_sklearn_exactly_with_a_bin_per_value(classes):
    labels = LABELS3 % classes
    # Depth 2 keeps nodes large: in tiny nodes two codes can tie exactly, and sklearn breaks
    # ties by a random feature order that is not worth reproducing.
    reference = GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0).fit(CODES, labels)
    ours = fit_boosted_trees(CODES, labels, n_stages=5, max_depth=2, max_bins=N)
    np.testing.assert_allclose(ours.importance, reference.feature_importances_, atol=1e-12)
    raw = ours.raw_predictions(CODES)
    prob = scipy.special.expit(raw[:, 0]) if classes == 2 else scipy.special.softmax(raw, axis=1)
    expected = reference.predict_proba(CODES)[:, 1] if classes == 2 else reference.predict_proba(CODES)
    np.testing.assert_allclose(prob, expected, atol=1e-12)
    np.testing.assert_array_equal(ours.predict(CODES), reference.predict(CODES))


def test_binned_importance_stays_close():
    reference = GradientBoostingClassifier(random_state=0).fit(CODES, LABELS3)
    ours = fit_boosted_trees(CODES, LABELS3, max_bins=16)
    assert np.abs(ours.importance - reference.feature_importances_).max() < 0.05
    assert ours.importance.argmax() == 0


def test_keeps_original_labels():
    labels = np.array(["b", "a"])[LABELS3 % 2]
    assert set(fit_boosted_trees(CODES, labels, n_stages=3).predict(CODES)) <= {"a", "b"}
