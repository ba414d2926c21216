"""Figures of aggregates with their evidence: every mean beside its chance level, with n and a
95% interval (from `analyses.summaries`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .figures import _plain


def _interval(value: float, low: float, high: float, signed: bool = False) -> str:
    form = "+.2f" if signed else ".2f"
    if np.isnan(low):
        return f"{value:{form}}"
    return f"{value:{form}} [{low:{form}}, {high:{form}}]"


def leakage_figure(summary: pd.DataFrame, title: str = "Attention mass by region, against a uniform map") -> go.Figure:
    """Roles x kinds of region, coloured by the excess of attention mass over chance (the
    region's area share, what a uniform map puts there); each cell says the mass, the chance,
    the excess with its 95% interval and the number of words.

    Args:
        summary: `analyses.summaries.leakage_summary` of a leakage frame.
    """
    roles = list(dict.fromkeys(summary.role))
    kinds = list(dict.fromkeys(summary.kind))
    z = np.full((len(roles), len(kinds)), np.nan)
    text = [["" for _ in kinds] for _ in roles]
    for row in summary.itertuples():
        i, j = roles.index(row.role), kinds.index(row.kind)
        z[i, j] = row.excess
        text[i][j] = (f"mass {_interval(row.mass, row.mass_low, row.mass_high)}<br>chance {row.chance:.2f}<br>"
                      f"excess {_interval(row.excess, row.excess_low, row.excess_high, signed=True)}<br>n {row.n}")
    limit = max(0.05, float(np.nanmax(np.abs(z)))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(go.Heatmap(
        z=np.round(z, 3).tolist(), x=[_plain(k) for k in kinds], y=[_plain(r) for r in roles], text=text, texttemplate="%{text}",
        hovertemplate="%{y} on %{x}<br>%{text}<extra></extra>", colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit,
        colorbar=dict(title="mass - chance"),
    ))
    return fig.update_layout(title=title, yaxis=dict(autorange="reversed"), xaxis=dict(side="top"))


def localisation_figure(summary: pd.DataFrame, title: str = "Localisation (DAAM IoU at threshold 0.4)") -> go.Figure:
    """Mean IoU per role with its 95% interval and n, and the chance level beside each bar (the
    IoU of a map covering the whole image: the region's area share).

    Args:
        summary: `analyses.summaries.localisation_summary` of a localisation frame.
    """
    roles = [_plain(r) for r in summary.role]
    fig = go.Figure(go.Bar(
        x=roles, y=summary.iou, name="mean IoU",
        error_y=dict(type="data", array=(summary.iou_high - summary.iou).fillna(0), arrayminus=(summary.iou - summary.iou_low).fillna(0)),
        text=[f"n {n}" for n in summary.n], textposition="inside",
        hovertemplate="%{x}: IoU %{y:.2f}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(x=roles, y=summary.chance, mode="markers", name="chance (area share)",
                             marker_symbol="line-ew-open", marker_size=28, marker_line_width=3))
    return fig.update_layout(title=title, yaxis=dict(range=[0, 1], title="IoU with the named region"))
