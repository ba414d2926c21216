"""Known answers for the attention analysis's aggregates: chance levels, excess, the
background word's mass kept apart per object, n and intervals."""

import numpy as np
import pandas as pd
import pytest

from workbench.analyses.summaries import leakage_summary, localisation_summary, region_kinds

OBJECTS = ["object 1 (red circle)", "object 2 (blue square)"]


def leakage_rows(prompt, masses_red, masses_bg):
    """A two-object scene: the word "red" (own: object 1) and the background word, with their
    mass on each region; areas 0.1, 0.2 and 0.7."""
    areas = dict(zip([*OBJECTS, "background"], [0.1, 0.2, 0.7]))
    rows = []
    for word, role, own, masses in (("red", "color", OBJECTS[0], masses_red), ("gray", "background", "background", masses_bg)):
        for region, mass in zip([*OBJECTS, "background"], masses):
            rows.append({"prompt": prompt, "word": word, "occurrence": 0, "role": role, "own_region": own,
                         "region": region, "area": areas[region], "mass": mass})
    return rows


def test_kinds_split_the_background_words_mass_per_object():
    frame = pd.DataFrame(leakage_rows(0, [0.5, 0.1, 0.4], [0.05, 0.15, 0.8]))
    assert region_kinds(frame).tolist() == ["own region", "other regions", "background", "object 1", "object 2", "own region"]


def test_leakage_summary_known_answer():
    frame = pd.DataFrame(leakage_rows(0, [0.5, 0.1, 0.4], [0.05, 0.15, 0.8]) + leakage_rows(1, [0.3, 0.3, 0.4], [0.15, 0.05, 0.8]))
    summary = leakage_summary(frame).set_index(["role", "kind"])
    own = summary.loc[("color", "own region")]
    assert own.n == 2 and own.mass == pytest.approx(0.4) and own.chance == pytest.approx(0.1)
    assert own.excess == pytest.approx(0.3) and own.mass_low <= own.mass <= own.mass_high
    assert summary.loc[("background", "object 1")].mass == pytest.approx(0.1)
    assert summary.loc[("background", "object 2")].chance == pytest.approx(0.2)
    assert summary.loc[("background", "own region")].excess == pytest.approx(0.1)
    assert ("background", "other regions") not in summary.index
    assert list(summary.loc["color"].index) == ["own region", "other regions", "background"]


def test_localisation_summary_known_answer():
    frame = pd.DataFrame({"prompt": [0, 1, 2], "word": ["red"] * 3, "occurrence": 0, "role": "color", "region": "o",
                          "area": [0.1, 0.2, 0.3], "iou": [0.5, 0.6, 0.7], "mass_inside": 0.5})
    row = localisation_summary(frame).iloc[0]
    assert row.n == 3 and row.iou == pytest.approx(0.6) and row.chance == pytest.approx(0.2) and row.excess == pytest.approx(0.4)
    assert 0.5 <= row.iou_low <= 0.6 <= row.iou_high <= 0.7
    assert len(leakage_summary(frame.iloc[:0].assign(own_region=[], mass=[]))) == 0 and np.isnan(localisation_summary(frame).excess_low).sum() == 0
