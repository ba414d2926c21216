"""Figures of a model comparison: before | after | difference, and which words changed most."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..capture.maps import AttentionMaps
from .figures import _plain
from .heat_maps import MAX_HEAT_SIZE, _grid, _label, _rounded, default_word, png_source


def diff_figure(images: tuple[np.ndarray, np.ndarray], maps: tuple[AttentionMaps, AttentionMaps], names: tuple[str, str],
                max_heat_size: int = MAX_HEAT_SIZE) -> go.Figure:
    """For each prompt and word (a menu): the two models' images, the word's heat map in each
    (all layers, at the base's finest grid) and their difference, other - base, on a diverging
    scale centred on 0. Opens on the first prompt's default word.

    Args:
        images: each model's generated images (prompts, y, x, 3).
        maps: each model's traced maps of the same prompts.
        names: (base, other).
    """
    base, other = maps
    height, width = images[0].shape[1:3]
    grid = _grid(base, None, (height, width), max_heat_size)
    fig = make_subplots(rows=2, cols=3, subplot_titles=(_plain(names[0]), _plain(names[1]), "", f"{_plain(names[0])}: heat map",
                                                         f"{_plain(names[1])}: heat map", "difference (other - base)"),
                        vertical_spacing=0.12, horizontal_spacing=0.06)
    prompts = len(images[0])
    for p in range(prompts):
        for col in (0, 1):
            fig.add_trace(go.Image(source=png_source(images[col][p]), visible=p == 0, hoverinfo="skip"), row=1, col=col + 1)
    combos = []
    for p in range(prompts):
        spans = [s for s in base.tokens.words[p] if s.tokens]
        known = {(s.word, s.occurrence) for s in other.tokens.words[p] if s.tokens}
        first = default_word(spans) if spans else 0
        for i, span in enumerate(spans):
            if (span.word, span.occurrence) not in known:
                continue
            heat = [m.word(span.word, prompt=p, occurrence=span.occurrence, size=grid) for m in (base, other)]
            change = heat[1] - heat[0]
            limit = float(change.abs().max()) or 1e-6
            dy, dx = height / grid[0], width / grid[1]
            cells = dict(x0=dx / 2 - 0.5, dx=dx, y0=dy / 2 - 0.5, dy=dy, zsmooth="best", visible=False)
            top = float(max(h.max() for h in heat)) or 1e-6
            for col, values in ((1, heat[0]), (2, heat[1])):
                fig.add_trace(go.Heatmap(z=_rounded(values), colorscale="Viridis", zmin=0, zmax=top, showscale=col == 2,
                                         colorbar=dict(title="attention", x=0.64, len=0.45, y=0.22), **cells), row=2, col=col)
            fig.add_trace(go.Heatmap(z=_rounded(change), colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit,
                                     colorbar=dict(title="change", len=0.45, y=0.22), **cells), row=2, col=3)
            combos.append((p, _label(span, spans), i == first))
    if not combos:
        raise ValueError("the two models share no word of the prompts to compare")
    images_n = 2 * prompts

    def visible(k: int) -> list[bool]:
        p = combos[k][0]
        return [j // 2 == p for j in range(images_n)] + [j // 3 == k for j in range(3 * len(combos))]

    active = next(k for k, c in enumerate(combos) if c[0] == 0 and c[2]) if any(c[0] == 0 and c[2] for c in combos) else 0
    for j, flag in enumerate(visible(active)):
        fig.data[j].visible = flag
    buttons = [dict(label=_plain(f"{p}: {word}"), method="update", args=[{"visible": visible(k)}, {"title.text": _plain(base.tokens.texts[p])}])
               for k, (p, word, _) in enumerate(combos)]
    fig.update_yaxes(autorange="reversed", showticklabels=False).update_xaxes(showticklabels=False)
    for i in ("", "2", "4", "5", "6"):  # square pixels in every panel but the empty one
        fig.layout[f"yaxis{i}"].scaleanchor = f"x{i}"
    return fig.update_layout(title=_plain(base.tokens.texts[combos[active][0]]), height=720,
                             updatemenus=[dict(buttons=buttons, active=active, direction="down", x=0, y=1.12, xanchor="left")])


def word_change_figure(words: pd.DataFrame, title: str = "How much each word changed") -> go.Figure:
    """Per word (mean over its prompts): 1 - heat-map overlap and 1 - text-encoder cosine, one
    bar each, words most changed first.

    Args:
        words: `ModelDiff.words` (prompt, word, occurrence, heat_overlap, encoder_cosine, ...).
    """
    per_word = words.groupby("word", sort=False)[["heat_overlap", "encoder_cosine"]].mean()
    change = pd.DataFrame({"heat maps (1 - overlap)": 1 - per_word.heat_overlap, "text encoder (1 - cosine)": 1 - per_word.encoder_cosine})
    change = change.sort_values("heat maps (1 - overlap)", ascending=False)
    counts = words.groupby("word", sort=False).size().reindex(change.index)
    fig = go.Figure([go.Bar(x=[_plain(w) for w in change.index], y=change[column].round(4), name=column, customdata=counts.to_numpy(),
                            hovertemplate="%{x}: %{y:.3f} (n %{customdata} prompt(s))<extra></extra>") for column in change.columns])
    return fig.update_layout(title=title, barmode="group", yaxis_title="change (0: none)")


def erasure_figure(presence: pd.DataFrame, title: str = "Is the concept still drawn?") -> go.Figure:
    """The concept's presence rate per source (plain prompts, paraphrases, each attack), one bar
    per model, with 95% intervals and n in the hover.

    Args:
        presence: `ErasureAudit.presence` (model, source, n, present, rate, low, high).
    """
    sources = list(dict.fromkeys(presence.source))
    bars = []
    for model, rows in presence.groupby("model", sort=False):
        rows = rows.set_index("source").reindex(sources)
        bars.append(go.Bar(x=sources, y=rows.rate.round(4), name=_plain(str(model)), customdata=np.stack([rows.n, rows.low, rows.high], 1),
                           error_y=dict(type="data", symmetric=False, array=(rows.high - rows.rate).round(4), arrayminus=(rows.rate - rows.low).round(4)),
                           hovertemplate="%{x}: %{y:.2f} [%{customdata[1]:.2f}, %{customdata[2]:.2f}] of %{customdata[0]} images<extra></extra>"))
    return go.Figure(bars).update_layout(title=title, barmode="group", yaxis=dict(title="share of images showing it", range=[0, 1.05]))
