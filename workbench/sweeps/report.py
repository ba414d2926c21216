"""The sweep dashboard: each headline measure against each axis of the sweep, with intervals.

Reads only the sweep folder (index.parquet, tables/); never loads a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from ..analyses.summaries import leakage_summary, localisation_summary
from ..metrics import bootstrap_mean
from ..viz import Section, write_dashboard
from ..viz.figures import _plain

def _by_axis(frame: pd.DataFrame, axis: str, summarise) -> pd.DataFrame:
    """`summarise` (a frame -> rows of group, mean, low, high, n) at each value of the axis."""
    rows = []
    for value, part in frame.groupby(axis, sort=True):
        for row in summarise(part):
            rows.append({"value": value, **row})
    return pd.DataFrame(rows, columns=["value", "group", "mean", "low", "high", "n"])


def _own_region_excess(part: pd.DataFrame) -> list[dict]:
    summary = leakage_summary(part)
    own = summary[summary.kind == "own region"]
    return [{"group": r.role, "mean": r.excess, "low": r.excess_low, "high": r.excess_high, "n": r.n} for r in own.itertuples()]


def _localisation(part: pd.DataFrame) -> list[dict]:
    return [{"group": r.role, "mean": r.iou, "low": r.iou_low, "high": r.iou_high, "n": r.n} for r in localisation_summary(part).itertuples()]


def _bootstrapped(part: pd.DataFrame, keys: list[str], value: str, label) -> list[dict]:
    """Per group of `keys`: the mean of `value` with its 95% bootstrap interval and n, the group named by `label(*key)`."""
    rows = []
    for key, group in part.groupby(keys, sort=False):
        found = bootstrap_mean(group[value])
        rows.append({"group": label(*key), "mean": found.mean, "low": found.low, "high": found.high, "n": found.n})
    return rows


def _tcav(part: pd.DataFrame) -> list[dict]:
    return _bootstrapped(part, ["concept", "layer"], "score", lambda concept, layer: f"{concept} @ {layer}")


def _diff_overlap(part: pd.DataFrame) -> list[dict]:
    return _bootstrapped(part, ["against", "word"], "heat_overlap", lambda against, word: f"{word} ({against})")


# measure -> (its merged table, a frame of that table -> rows of group, mean, low, high, n)
MEASURES = {
    "attention mass on the word's own region, above chance": ("attention/leakage", _own_region_excess),
    "localisation IoU (DAAM, threshold 0.4)": ("attention/localisation", _localisation),
    "TCAV score": ("tcav/scores", _tcav),
    "heat-map overlap with the compared model (1: unchanged)": ("diff/words", _diff_overlap),
}


def axis_figure(points: pd.DataFrame, axis: str, measure: str) -> go.Figure:
    """One line per group: the measure's mean at each axis value, with its 95% interval and n."""
    fig = go.Figure()
    for group, rows in points.groupby("group", sort=False):
        rows = rows.sort_values("value")
        x = [_plain(v) if isinstance(v, str) else v for v in rows["value"]]
        fig.add_trace(go.Scatter(
            x=x, y=rows["mean"], mode="lines+markers", name=_plain(group),
            error_y=dict(type="data", array=(rows["high"] - rows["mean"]).fillna(0), arrayminus=(rows["mean"] - rows["low"]).fillna(0)),
            customdata=rows[["n"]].to_numpy(), hovertemplate="%{x}: %{y:.3f} (n %{customdata[0]})<extra>" + _plain(group) + "</extra>",
        ))
    return fig.update_layout(title=_plain(f"{measure} against {axis}"), xaxis_title=_plain(axis), yaxis_title=_plain(measure))


def sweep_sections(out: str | Path) -> tuple[dict, list[Section]]:
    """The sweep's record and a section per (measure, axis) its tables allow, after the cells' status."""
    out = Path(out)
    record = json.loads((out / "sweep.json").read_text())
    index = pd.read_parquet(out / "index.parquet")
    status = go.Figure([go.Bar(x=rows.cell, y=rows.seconds.fillna(0), name=name, hovertext=rows.error.fillna(""))
                        for name, rows in index.groupby("status")])
    failed = index[index.status == "failed"]
    sections = [Section(f"Cells: {len(index) - len(failed)} of {len(index)} done", status.update_layout(yaxis_title="seconds"),
                        "Seconds per cell, by status; a failed cell's error shows on hover and is in index.parquet and sweep.log.")]
    axes = [a for a in record["axes"] if a in index.columns and index[a].nunique() > 1]
    for measure, (table, summarise) in MEASURES.items():
        path = out / "tables" / f"{table}.parquet"
        if not path.is_file():
            continue
        frame = pd.read_parquet(path)
        for axis in axes:
            points = _by_axis(frame, axis, summarise)
            if len(points):
                sections.append(Section(f"{measure} against {axis}", axis_figure(points, axis, measure),
                                        "Each point: the mean over the cells at that value (all other axes pooled), with its 95% "
                                        "bootstrap interval; n on hover."))
    return record, sections


def write_sweep_dashboard(out: str | Path) -> Path:
    """Write DIR/dashboard.html for a sweep folder."""
    record, sections = sweep_sections(out)
    settings = {"sweep": record["name"], "description": record.get("description", ""), "base probe": record["base_probe"],
                "axes": record["axes"], "cells": len(record["cells"])}
    return write_dashboard(Path(out) / "dashboard.html", f"sweep {record['name']}", sections, settings)
