"""Heat-map figures: each generated image beside its words' heat maps, and a gallery of images.

Heat maps stay at the resolution they were captured at (the browser smooths them over the
image), with values rounded to 3 significant digits, and images travel as PNG: pages stay light.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from plotly.subplots import make_subplots

from ..capture.maps import AttentionMaps
from ..capture.tokens import WordSpan
from .figures import _plain

MAX_SLIDER_STEPS = 10
MAX_HEAT_SIZE = 64
OPACITIES = (0.0, 0.25, 0.5, 0.75, 1.0)
COLOR_BAR = "attention on the word (probability)"
# never the word a figure opens on: articles, sizes, generic picture words
NOT_DEFAULT = frozenset({"a", "an", "the", "this", "that", "photo", "picture", "image", "painting", "small", "large", "big",
                         "tiny", "huge", "medium"})
# words that end a prompt's first phrase
PHRASE_ENDS = frozenset({"on", "in", "with", "at", "of", "near", "under", "over", "beside", "behind", "and", "by", "from", "to"})
FUNCTION_WORDS = PHRASE_ENDS | {"a", "an", "the", "or"}


def _bare(word: str) -> str:
    return word.lower().strip(",.;:!?")


def default_word(spans: Sequence[WordSpan]) -> int:
    """The index of the word a heat map opens on: the head of the prompt's first phrase (its
    last word before the first preposition, conjunction or comma), skipping articles and sizes:
    "a large red circle on a gray background" -> "circle", "a <cat-toy> on a sofa" -> "<cat-toy>"."""
    content = [i for i, s in enumerate(spans) if _bare(s.word) not in NOT_DEFAULT | PHRASE_ENDS]
    if not content:
        return 0
    first = content[0]
    end = next((i for i in range(first + 1, len(spans)) if _bare(spans[i].word) in PHRASE_ENDS or spans[i - 1].word.endswith(",")),
               len(spans))
    return [i for i in content if i < end][-1]


def _rounded(values: torch.Tensor) -> list:
    """Nested lists rounded to 3 significant digits of their largest value (short JSON)."""
    array = values.numpy().astype(float)
    top = float(np.abs(array).max()) if array.size else 0.0
    decimals = 3 if top == 0 else min(8, max(0, 2 - math.floor(math.log10(top))))
    return np.round(array, decimals).tolist()


def png_source(image: np.ndarray) -> str:
    """An image (y, x, 3) in [0, 1] or uint8 as a PNG data URI (plotly's Image `source`)."""
    picture = np.asarray(image)
    picture = (picture * 255).round().astype(np.uint8) if picture.dtype != np.uint8 else picture
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _slider_positions(n: int, most: int) -> list[int]:
    """Positions in `maps.steps` offered on the step slider: all of them, or `most` evenly
    spaced ones with the first and the last."""
    if n <= most:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, max(most, 2))})


def _grid(maps: AttentionMaps, layers, image_size: tuple[int, int], most: int) -> tuple[int, int]:
    """(y, x) of the heat maps: the finest captured grid among the layers (never finer than the
    image, at most `most` a side)."""
    shapes = [tuple(maps.maps[layer.path].shape[-2:]) for layer in maps.select(layers)]
    y, x = max(shapes, key=lambda s: s[0] * s[1])
    scale = min(1.0, most / max(y, x), image_size[0] / y)
    return max(1, round(y * scale)), max(1, round(x * scale))


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


def _label(span: WordSpan, spans: Sequence[WordSpan]) -> str:
    """The word, with its occurrence where the prompt repeats it ("a #2")."""
    return span.word if sum(s.word == span.word for s in spans) == 1 else f"{span.word} #{span.occurrence + 1}"


def heat_map_figure(
    images: np.ndarray, maps: AttentionMaps, prompts: int | Sequence[int] | None = None, words: Sequence[str] | None = None,
    layer_groups: Mapping[str, Sequence[str] | None] | None = None, opacity: float = 0.0,
    max_steps: int = MAX_SLIDER_STEPS, max_heat_size: int = MAX_HEAT_SIZE, menu: bool = True, function_words: bool = True,
) -> go.Figure:
    """Generated images beside their words' heat maps: on the left the image (with the heat map
    over it at a chosen opacity), on the right the heat map alone with a colour bar. A menu
    chooses the prompt, word and layers (the dashboard splits it into a prompt, a word and a
    layers menu); a slider sets the overlay's opacity; for maps captured per step
    (`trace(..., per_step=True)`), a second slider chooses the denoising step.

    Trace p (p < number of prompts shown) is prompt p's image; then two traces per (prompt,
    layer group, word), layer groups outer: the overlay, then the heat map alone. Each opens on
    its prompt's default word (`default_word`); `layout.meta["heat"]` indexes the traces.

    Args:
        images: the generated images, (n, y, x, 3) for the traced batch, or (y, x, 3) for the
            one prompt named by `prompts`; float in [0, 1] or uint8.
        maps: the trace's attention maps.
        prompts: which prompt(s) of the batch (default: all).
        words: the words offered (default: every word of each prompt).
        layer_groups: name -> layer selectors (default: all layers, then each block group).
        opacity: the overlay's opacity at first (0: the image alone).
        max_steps: the most denoising steps on the slider besides "all" (evenly spaced, first
            and last kept); the slider appears only with per-step maps of two or more steps.
        max_heat_size: the heat maps' longest side in cells (default 64).
        menu: plotly's own menu of every (prompt, word, layers); a dashboard leaves it out (its
            page builds prompt, word and layers menus from `layout.meta`), which keeps a page of
            many prompts light (each entry carries a visibility flag per trace).
        function_words: offer articles, prepositions and conjunctions too ("a", "on", "and").

    Returns:
        The figure.

    Raises:
        ValueError: a single image without one prompt named, or none of `words` in the prompts.

    Example:
        >>> with trace(pipe) as tr:
        ...     images = pipe(prompts, output_type="np").images
        >>> heat_map_figure(images, tr.attention_maps(), words=["red", "circle"])
    """
    batch = np.asarray(images)
    if batch.ndim == 3:
        if not isinstance(prompts, int):
            raise ValueError("one image (y, x, 3) is one prompt's: name it with prompts=INDEX")
        batch, shown = batch[None], [prompts]
    else:
        shown = list(range(len(batch))) if prompts is None else [prompts] if isinstance(prompts, int) else list(prompts)
        batch = batch[shown]
    groups = dict(layer_groups) if layer_groups else {"all layers": None, **{g: [g] for g in sorted({l.group for l in maps.select()})}}
    positions = _slider_positions(len(maps.steps), max_steps) if maps.per_step and len(maps.steps) > 1 else []
    height, width = batch.shape[1:3]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=("generated image", "heat map"))
    for i, picture in enumerate(batch):
        fig.add_trace(go.Image(source=png_source(picture), visible=i == 0, hoverinfo="skip"), row=1, col=1)
    combos, heat, defaults = [], {}, []
    for i, prompt in enumerate(shown):
        spans = [s for s in maps.tokens.words[prompt] if s.tokens and (words is None or s.word in words)
                 and (function_words or _bare(s.word) not in FUNCTION_WORDS)]
        if not spans:
            continue
        # the head noun is found on the whole prompt: its phrase ends ("and", "on") may be left out of the menu
        head = maps.tokens.words[prompt][default_word(maps.tokens.words[prompt])]
        defaults.append((len(combos), spans.index(head) if head in spans else default_word(spans)))
        for g, layers in groups.items():
            size = _grid(maps, layers, (height, width), max_heat_size)
            for span, values in zip(spans, _word_heat_maps(maps, prompt, layers, size, spans, positions)):
                heat[len(combos)] = values
                combos.append((i, prompt, g, _label(span, maps.tokens.words[prompt])))
    if not combos:
        raise ValueError(f"none of the words {list(words or [])} is in prompt(s) {shown}: {[maps.tokens.texts[p] for p in shown]}")
    for k, (i, prompt, g, word) in enumerate(combos):
        values = heat[k][0]
        dy, dx = height / values.shape[0], width / values.shape[1]
        cells = dict(z=_rounded(values), x0=dx / 2 - 0.5, dx=dx, y0=dy / 2 - 0.5, dy=dy, zsmooth="best", colorscale="Viridis",
                     zmin=0, visible=False, name=_plain(f"{word} ({g})"))
        fig.add_trace(go.Heatmap(**cells, opacity=opacity, showscale=False, hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Heatmap(**cells, colorbar=dict(title=dict(text=COLOR_BAR, side="right")),
                                 hovertemplate="x %{x:.0f}, y %{y:.0f}: %{z:.3g}<extra></extra>"), row=1, col=2)
    first_combo = {}
    for start, offset in defaults:  # each prompt opens on its default word in the first layer group
        first_combo[combos[start][0]] = start + offset
    images_n = len(batch)

    def visible(k: int) -> list[bool]:
        shown_image = combos[k][0]
        return [j == shown_image for j in range(images_n)] + [j // 2 == k for j in range(2 * len(combos))]

    active = first_combo[combos[0][0]]
    for j, flag in enumerate(visible(active)):
        fig.data[j].visible = flag
    several = len(shown) > 1
    buttons = [dict(label=_plain(f"{prompt}: {word} | {g}" if several else f"{word} | {g}"), method="update",
                    args=[{"visible": visible(k)}, {"title.text": _plain(maps.tokens.texts[prompt])}])
               for k, (i, prompt, g, word) in enumerate(combos)]
    overlays = [images_n + 2 * k for k in range(len(combos))]
    sliders = [dict(active=OPACITIES.index(opacity) if opacity in OPACITIES else 0, currentvalue=dict(prefix="overlay opacity: "),
                    steps=[dict(label=f"{o:g}", method="restyle", args=[{"opacity": o}, overlays]) for o in OPACITIES],
                    x=0, len=0.45, y=0, yanchor="top", pad=dict(t=30))]
    if positions:
        traces = list(range(images_n, images_n + 2 * len(combos)))
        labels = ["all"] + [str(maps.steps[p]) for p in positions]
        sliders.append(dict(active=0, currentvalue=dict(prefix="denoising step: "), x=0.55, len=0.45, y=0, yanchor="top", pad=dict(t=30),
                            steps=[dict(label=text, method="restyle", args=[{"z": [_rounded(heat[k // 2][s]) for k in range(2 * len(combos))]}, traces])
                                   for s, text in enumerate(labels)]))
    for axis in ("yaxis", "yaxis2"):
        fig.layout[axis].update(autorange="reversed", showticklabels=False)
    fig.update_layout(
        title=_plain(maps.tokens.texts[combos[active][1]]), height=520, margin=dict(t=110, b=110),
        updatemenus=[dict(buttons=buttons, active=active, direction="down", x=0, y=1.2, xanchor="left")] if menu else [], sliders=sliders,
        xaxis=dict(showticklabels=False), xaxis2=dict(showticklabels=False, matches="x"), yaxis=dict(scaleanchor="x"),
        yaxis2=dict(scaleanchor="x2", matches="y"),
        meta={"heat": {"prompts": [maps.tokens.texts[p] for p in shown], "images": list(range(images_n)),
                       "combos": [[i, word, g, images_n + 2 * k] for k, (i, prompt, g, word) in enumerate(combos)],
                       "defaults": [first_combo.get(i) for i in range(images_n)], "active": active}},
    )
    return fig


def gallery_figure(images: np.ndarray, captions: Sequence[str], columns: int = 4) -> go.Figure:
    """Every generated image with its prompt, in a grid.

    Args:
        images: (n, y, x, 3) in [0, 1] or uint8.
        captions: n prompts (shown as written, wrapped).

    Raises:
        ValueError: a caption count other than the image count.
    """
    if len(captions) != len(images):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    rows = max(1, math.ceil(len(images) / columns))
    titles = [_plain(_wrapped(text)).replace("\n", "<br>") for text in captions]
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, vertical_spacing=0.3 / rows, horizontal_spacing=0.02)
    for n, picture in enumerate(images):
        fig.add_trace(go.Image(source=png_source(picture), hoverinfo="skip"), row=n // columns + 1, col=n % columns + 1)
    fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
    fig.update_annotations(font_size=11)
    return fig.update_layout(height=260 * rows, margin=dict(t=60, b=10, l=10, r=10))


def _wrapped(text: str, width: int = 28) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join(lines + [line])
