"""Plotly figures from results: tidy data in, `go.Figure` out (never shown here)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from ..capture.maps import AttentionMaps


def heat_map_figure(
    image: np.ndarray, maps: AttentionMaps, prompt: int = 0, words: Sequence[str] | None = None,
    layer_groups: Mapping[str, Sequence[str] | None] | None = None, opacity: float = 0.55,
) -> go.Figure:
    """A generated image with one word's heat map over it; menus choose the word and the layers.

    Args:
        image: the generated image, (y, x, 3) float in [0, 1] or uint8.
        maps: the trace's attention maps.
        prompt: which prompt of the batch.
        words: the words offered (default: every word of the prompt).
        layer_groups: name -> layer selectors (default: all layers, then each block group).
    """
    picture = np.asarray(image)
    picture = (picture * 255).round().astype(np.uint8) if picture.dtype != np.uint8 else picture
    spans = maps.tokens.words[prompt]
    chosen = [s for s in spans if s.tokens and (words is None or s.word in words)]
    if not chosen:
        raise ValueError(f"none of the words {list(words or [])} is in prompt {prompt}: {maps.tokens.texts[prompt]!r}")
    groups = dict(layer_groups) if layer_groups else {"all layers": None, **{g: [g] for g in sorted({l.group for l in maps.select()})}}
    size = picture.shape[:2]
    fig = go.Figure(go.Image(z=picture))
    combos = [(g, s) for g in groups for s in chosen]
    for g, span in combos:
        heat = maps.word(span.word, prompt=prompt, occurrence=span.occurrence, layers=groups[g], size=size).numpy()
        fig.add_trace(go.Heatmap(z=heat, opacity=opacity, colorscale="Inferno", showscale=False, visible=False,
                                 name=f"{span.word} ({g})", hovertemplate="x %{x}, y %{y}: %{z:.3f}<extra></extra>"))
    fig.data[1].visible = True

    def label(span) -> str:
        return span.word if sum(s.word == span.word for s in chosen) == 1 else f"{span.word} #{span.occurrence + 1}"

    buttons = []
    for i, (g, span) in enumerate(combos):
        visible = [True] + [j == i for j in range(len(combos))]
        buttons.append(dict(label=f"{label(span)} | {g}", method="update", args=[{"visible": visible}]))
    fig.update_layout(
        title=maps.tokens.texts[prompt], updatemenus=[dict(buttons=buttons, direction="down", x=0, y=1.15, xanchor="left")],
        yaxis=dict(scaleanchor="x", autorange="reversed"), margin=dict(t=90),
    )
    return fig


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
    return px.scatter(frame, x="x", y="y", color=color, hover_data=hover, title=title).update_yaxes(scaleanchor="x")


def tcav_figure(frame: pd.DataFrame, title: str = "TCAV") -> go.Figure:
    """Bars of mean sign-count scores with standard deviations, per concept and layer, beside the
    random baseline; non-significant results are faded and marked "n.s."."""
    missing = {"concept", "layer", "score", "score_std", "random_score", "significant"} - set(frame.columns)
    if missing:
        raise ValueError(f"a TCAV frame needs the columns {sorted(missing)}")
    fig = go.Figure()
    for layer, group in frame.groupby("layer", sort=False):
        fig.add_trace(go.Bar(
            x=group.concept, y=group.score, name=str(layer), error_y=dict(type="data", array=group.score_std),
            marker_opacity=[1.0 if s else 0.35 for s in group.significant],
            text=["" if s else "n.s." for s in group.significant], textposition="outside",
        ))
    fig.add_trace(go.Scatter(x=frame.concept, y=frame.random_score, mode="markers", name="random vs random", marker_symbol="line-ew-open", marker_size=18))
    return fig.update_layout(title=title, barmode="group", yaxis=dict(range=[0, 1.1], title="TCAV score"))


def concept_depth_figure(frame: pd.DataFrame, title: str = "CAV accuracy per layer") -> go.Figure:
    """Held-out CAV accuracy per layer (in the frame's layer order), a line per concept."""
    return px.line(frame, x="layer", y="cav_accuracy", color="concept", markers=True, title=title).update_yaxes(range=[0, 1.05])
