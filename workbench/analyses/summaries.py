"""The attention analysis's aggregates with their evidence: per word role, the mean attention
mass on each kind of region and the mean localisation IoU, each beside its chance level (what a
uniform map gets: the region's share of the image), the excess over it, the number of words and
a 95% bootstrap interval."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import bootstrap_mean

OWN, OTHERS, BACKGROUND = "own region", "other regions", "background"
LEAKAGE_SUMMARY = ["role", "kind", "n", "mass", "mass_low", "mass_high", "chance", "excess", "excess_low", "excess_high"]
LOCALISATION_SUMMARY = ["role", "n", "iou", "iou_low", "iou_high", "chance", "excess", "excess_low", "excess_high"]


def region_kinds(leakage: pd.DataFrame) -> pd.Series:
    """The kind of each leakage row's region for its word: its own region, the background, or
    the other regions (added up per word); for a word whose own region is the background, each
    other region by its name up to " (" (ShapesWorld's "object 1 (red circle)" -> "object 1"),
    so that the background word's mass on each object stays apart."""
    own = leakage.region == leakage.own_region
    background = leakage.region == "background"
    named = leakage.region.astype(str).str.split(" (", n=1, regex=False).str[0]
    kinds = np.select([own, background, leakage.own_region == "background"], [OWN, BACKGROUND, named], OTHERS)
    return pd.Series(kinds, index=leakage.index, name="kind")


def _interval_columns(prefix: str, values) -> dict[str, float]:
    found = bootstrap_mean(values)
    return {prefix: found.mean, f"{prefix}_low": found.low, f"{prefix}_high": found.high}


def leakage_summary(leakage: pd.DataFrame) -> pd.DataFrame:
    """Per role and kind of region: n words, mean mass [95% interval], chance (the mean area
    share), and excess = mass - area per word [95% interval]; roles and kinds in order of
    appearance, own region first.

    Args:
        leakage: the analysis's leakage frame (prompt, word, occurrence, role, own_region,
            region, area, mass).
    """
    if not len(leakage):
        return pd.DataFrame(columns=LEAKAGE_SUMMARY)
    keyed = leakage.assign(kind=region_kinds(leakage))
    per_word = keyed.groupby(["prompt", "word", "occurrence", "role", "kind"], sort=False)[["mass", "area"]].sum().reset_index()
    kinds = list(dict.fromkeys([OWN, *per_word.kind]))
    rows = []
    for role in dict.fromkeys(per_word.role):
        for kind in kinds:
            group = per_word[(per_word.role == role) & (per_word.kind == kind)]
            if not len(group):
                continue
            rows.append({"role": role, "kind": kind, "n": len(group), **_interval_columns("mass", group.mass),
                         "chance": float(group.area.mean()), **_interval_columns("excess", group.mass - group.area)})
    return pd.DataFrame(rows, columns=LEAKAGE_SUMMARY)


def localisation_summary(localisation: pd.DataFrame) -> pd.DataFrame:
    """Per role: n words, mean IoU [95% interval], chance (the mean area share: the IoU of a map
    that covers the whole image) and the excess over it [95% interval].

    Args:
        localisation: the analysis's localisation frame (prompt, word, occurrence, role, region,
            area, iou, mass_inside).
    """
    rows = []
    for role in dict.fromkeys(localisation.role):
        group = localisation[localisation.role == role]
        rows.append({"role": role, "n": len(group), **_interval_columns("iou", group.iou), "chance": float(group.area.mean()),
                     **_interval_columns("excess", group.iou - group.area)})
    return pd.DataFrame(rows, columns=LOCALISATION_SUMMARY)
