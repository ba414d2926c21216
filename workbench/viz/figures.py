"""Plotly figures from results: tidy data in, `go.Figure` out (never shown here)."""

from __future__ import annotations

import html
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch

from ..capture.maps import AttentionMaps


MAX_SLIDER_STEPS = 10
MAX_HEAT_SIZE = 64


def _plain(text: str) -> str:
    """Plotly renders a few HTML-like tags (<b>, <br>, <a>) in titles and labels; escaped, the
    user's text shows as written ("a <new1> toy", "salt & pepper")."""
    return html.escape(str(text), quote=False)


def _rounded(values: torch.Tensor) -> list:
    """Nested lists rounded to 3 decimals: short figure JSON (plotly would write float64 bytes)."""
    return np.round(values.numpy().astype(float), 3).tolist()


def _slider_positions(n: int, most: int) -> list[int]:
    """Positions in `maps.steps` offered on the step slider: all of them, or `most` evenly
    spaced ones with the first and the last."""
    if n <= most:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, max(most, 2))})


def _heat_size(size: tuple[int, int], most: int) -> tuple[int, int]:
    """The heat maps' (y, x): the image's, shrunk to at most `most` a side (attention is
    coarser than the image; upsampling further only inflates the figure)."""
    scale = min(1.0, most / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _word_heat_maps(maps: AttentionMaps, prompt: int, layers, size: tuple[int, int], spans, positions: list[int]) -> list[torch.Tensor]:
    """Per span, (1 + len(positions), y, x): the mean over steps, then the steps at `positions`.

    Equal to `maps.word(..., step=None)` and `maps.word(..., step=p)`, but stacks the layers once
    per layer group instead of once per word and step (per-step stacks are large)."""
    stacked = maps.stack(layers, size)[prompt]  # ([step], layer, [head], token, y, x)
    if not maps.per_step:
        stacked = stacked[None]
    stacked = stacked.mean(1)  # layers
    if maps.heads_kept:
        stacked = stacked.mean(1)  # heads
    result = []
    for span in spans:  # stacked: (step, token, y, x)
        per_step = stacked[:, list(span.tokens)].mean(1)
        result.append(torch.cat([per_step.mean(0, keepdim=True), per_step[positions]]))
    return result


FUNCTION_WORDS = frozenset({"a", "an", "the", "and", "on", "of", "in", "with", "photo"})


def heat_map_figure(
    image: np.ndarray, maps: AttentionMaps, prompt: int = 0, words: Sequence[str] | None = None,
    layer_groups: Mapping[str, Sequence[str] | None] | None = None, opacity: float = 0.55,
    max_steps: int = MAX_SLIDER_STEPS, max_heat_size: int = MAX_HEAT_SIZE,
) -> go.Figure:
    """A generated image with one word's heat map over it; a menu chooses the word and the
    layers and, for maps captured per step (`trace(..., per_step=True)`), a slider chooses the
    denoising step. The two controls are independent: the menu switches which heat map is
    visible, the slider restyles every heat map's values.

    Trace 0 is the image; trace 1 + i is the i-th (layer group, word) combination, layer groups
    outer, initially the mean over steps. Values are rounded to 3 decimals.

    Args:
        image: the generated image, (y, x, 3) float in [0, 1] or uint8.
        maps: the trace's attention maps.
        prompt: which prompt of the batch.
        words: the words offered (default: every word of the prompt).
        layer_groups: name -> layer selectors (default: all layers, then each block group).
        opacity: the heat maps' opacity over the image.
        max_steps: the most denoising steps on the slider besides "all" (evenly spaced, first
            and last kept); the slider appears only with per-step maps of two or more steps.
        max_heat_size: the heat maps' longest side in cells (default 64, SD's finest attention);
            smaller images keep their own size. The cells are stretched over the image.

    Returns:
        The figure.

    Raises:
        ValueError: if none of `words` is in the prompt.

    Example:
        >>> with trace(pipe, per_step=True) as tr:
        ...     image = pipe(prompt, output_type="np").images[0]
        >>> heat_map_figure(image, tr.attention_maps(), words=["red", "circle"])
    """
    picture = np.asarray(image)
    picture = (picture * 255).round().astype(np.uint8) if picture.dtype != np.uint8 else picture
    spans = maps.tokens.words[prompt]
    chosen = [s for s in spans if s.tokens and (words is None or s.word in words)]
    if not chosen:
        raise ValueError(f"none of the words {list(words or [])} is in prompt {prompt}: {maps.tokens.texts[prompt]!r}")
    groups = dict(layer_groups) if layer_groups else {"all layers": None, **{g: [g] for g in sorted({l.group for l in maps.select()})}}
    positions = _slider_positions(len(maps.steps), max_steps) if maps.per_step and len(maps.steps) > 1 else []
    height, width = picture.shape[:2]
    size = _heat_size((height, width), max_heat_size)
    dy, dx = height / size[0], width / size[1]  # image pixels per cell; cell centres below
    heat = {(g, i): h for g in groups for i, h in enumerate(_word_heat_maps(maps, prompt, groups[g], size, chosen, positions))}
    combos = [(g, i) for g in groups for i in range(len(chosen))]

    def label(span) -> str:
        return span.word if sum(s.word == span.word for s in chosen) == 1 else f"{span.word} #{span.occurrence + 1}"

    fig = go.Figure(go.Image(z=picture))
    for g, i in combos:
        fig.add_trace(go.Heatmap(
            z=_rounded(heat[g, i][0]), x0=dx / 2 - 0.5, dx=dx, y0=dy / 2 - 0.5, dy=dy,
            opacity=opacity, colorscale="Inferno", showscale=False, visible=False, name=_plain(f"{label(chosen[i])} ({g})"),
            hovertemplate="x %{x:.0f}, y %{y:.0f}: %{z:.3f}<extra></extra>",
        ))
    # open on the first content word, not on "a"
    first = next((k for k, (_, i) in enumerate(combos) if chosen[i].word.lower() not in FUNCTION_WORDS), 0)
    fig.data[1 + first].visible = True
    buttons = [
        dict(label=_plain(f"{label(chosen[i])} | {g}"), method="update", args=[{"visible": [True] + [j == k for j in range(len(combos))]}])
        for k, (g, i) in enumerate(combos)
    ]
    fig.update_layout(
        title=_plain(maps.tokens.texts[prompt]), updatemenus=[dict(buttons=buttons, active=first, direction="down", x=0, y=1.15, xanchor="left")],
        yaxis=dict(scaleanchor="x", autorange="reversed"), margin=dict(t=90),
    )
    if positions:
        heat_traces = list(range(1, len(combos) + 1))
        labels = ["all"] + [str(maps.steps[p]) for p in positions]
        steps = [
            dict(label=text, method="restyle", args=[{"z": [_rounded(heat[combo][k]) for combo in combos]}, heat_traces])
            for k, text in enumerate(labels)
        ]
        fig.update_layout(sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="denoising step: "), pad=dict(t=40), x=0, len=1)])
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
