"""Plotly figures from results: tidy data in, `go.Figure` out (never shown here)."""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def _plain(text: str) -> str:
    """Plotly renders a few HTML-like tags (<b>, <br>, <a>) in titles and labels; escaped, the
    user's text shows as written ("a <new1> toy", "salt & pepper")."""
    return html.escape(str(text), quote=False)


def matrix_figure(matrix, rows: Sequence[str], columns: Sequence[str], title: str, zmin: float | None = None, zmax: float | None = None) -> go.Figure:
    """An annotated heat map of a matrix (overlap, leakage, probe accuracy)."""
    values = np.asarray(matrix, dtype=float)
    if values.shape != (len(rows), len(columns)):
        raise ValueError(f"matrix has shape {values.shape} but {len(rows)} rows x {len(columns)} columns were named")
    fig = px.imshow(values, x=list(columns), y=list(rows), zmin=zmin, zmax=zmax, text_auto=".2f", color_continuous_scale="Viridis", aspect="auto")
    return fig.update_layout(title=title)


def projection_figure(frame: pd.DataFrame, color: str | None = None, hover: Sequence[str] | None = None, title: str = "UMAP") -> go.Figure:
    """Scatter of a projection frame (x, y, labels) coloured by one label column."""
    if color is not None and color not in frame.columns:
        raise ValueError(f"no column {color!r} to colour by; the frame has {', '.join(frame.columns)}")
    hover = list(hover) if hover is not None else [c for c in frame.columns if c not in ("x", "y")]
    # SVG, not WebGL: plotly express switches to scattergl past 1,000 points, which the dashboards' bundle lacks
    return px.scatter(frame, x="x", y="y", color=color, hover_data=hover, title=title, render_mode="svg").update_yaxes(scaleanchor="x")


def tcav_figure(frame: pd.DataFrame, title: str = "TCAV") -> go.Figure:
    """A bar per concept and layer (mean sign-count score +- std over random runs) with that
    layer's random-vs-random baseline beside it (the random sets' set-level scores, mean +- std:
    the null the bar's mean is tested against); non-significant results are faded and marked
    "n.s.". The x axis is two-level (concept, then layer) so each baseline sits on its bar."""
    missing = {"concept", "layer", "score", "score_std", "random_score", "significant"} - set(frame.columns)
    if missing:
        raise ValueError(f"a TCAV frame needs the columns {sorted(missing)}")
    x = [frame.concept.astype(str).tolist(), frame.layer.astype(str).tolist()]
    p_values = frame.p_value if "p_value" in frame.columns else [float("nan")] * len(frame)
    fig = go.Figure(go.Bar(
        x=x, y=frame.score, name="concept vs random", error_y=dict(type="data", array=frame.score_std),
        marker_opacity=[1.0 if s else 0.35 for s in frame.significant],
        text=["" if s else "n.s." for s in frame.significant], textposition="outside",
        customdata=np.stack([p_values], axis=1), hovertemplate="%{x}<br>score %{y:.3f}<br>p = %{customdata[0]:.2g}<extra></extra>",
    ))
    random_std = frame.random_score_std if "random_score_std" in frame.columns else None
    fig.add_trace(go.Scatter(
        x=x, y=frame.random_score, mode="markers", name="random vs random", marker_symbol="line-ew-open", marker_size=18,
        error_y=None if random_std is None else dict(type="data", array=random_std),
    ))
    return fig.update_layout(title=title, yaxis=dict(range=[0, 1.1], title="TCAV score"))


def concept_depth_figure(frame: pd.DataFrame, title: str = "CAV accuracy per layer") -> go.Figure:
    """Held-out CAV accuracy per layer (in the frame's layer order), a line per concept."""
    return px.line(frame, x="layer", y="cav_accuracy", color="concept", markers=True, title=title).update_yaxes(range=[0, 1.05])
