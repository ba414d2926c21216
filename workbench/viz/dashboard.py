"""One self-contained HTML dashboard per run: plotly.js inside, no network, every user string escaped."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import plotly.graph_objects as go

from ..files import atomic_path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table.settings { border-collapse: collapse; font-size: 0.9rem; } table.settings td { border: 1px solid #ddd; padding: 2px 8px; }
p.note { color: #555; }
.heat-menus { margin: 0.5rem 0; } .heat-menus label { margin-right: 1.2rem; } .heat-menus select { max-width: 28rem; }
.plotly-graph-div image { image-rendering: pixelated; }
"""

# Heat-map figures carry an index of their traces (layout.meta.heat, see viz.heat_maps): the page
# replaces their one long plotly menu by a prompt, a word and a layers menu. User strings enter
# as option text and an escaped title, never as markup.
HEAT_MENUS = """
function heatMenus(div) {
  const meta = div.layout && div.layout.meta && div.layout.meta.heat;
  if (!meta) return;
  const box = document.createElement('div');
  box.className = 'heat-menus';
  const menu = (name) => {
    const label = document.createElement('label');
    label.textContent = name + ' ';
    const select = document.createElement('select');
    select.name = name;
    label.appendChild(select);
    box.appendChild(label);
    return select;
  };
  const prompt = menu('prompt'), word = menu('word'), layers = menu('layers');
  meta.prompts.forEach((text, i) => { if (meta.defaults[i] !== null) prompt.add(new Option(text, i)); });
  [...new Set(meta.combos.map(c => c[2]))].forEach(g => layers.add(new Option(g, g)));
  const escape = (text) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const fillWords = (keep) => {
    const p = +prompt.value, seen = [];
    word.replaceChildren();
    meta.combos.forEach(c => { if (c[0] === p && !seen.includes(c[1])) { seen.push(c[1]); word.add(new Option(c[1], c[1])); } });
    word.value = keep !== null && seen.includes(keep) ? keep : meta.combos[meta.defaults[p]][1];
  };
  const show = () => {
    const p = +prompt.value;
    const k = meta.combos.findIndex(c => c[0] === p && c[1] === word.value && c[2] === layers.value);
    if (k < 0) return;
    const n = meta.images.length;
    const visible = div.data.map((trace, j) => j < n ? j === p : ((j - n) >> 1) === k);
    Plotly.update(div, {visible: visible}, {'title.text': escape(meta.prompts[p])});
  };
  const first = meta.combos[meta.active];
  prompt.value = first[0];
  layers.value = first[2];
  fillWords(first[1]);
  prompt.addEventListener('change', () => { fillWords(null); show(); });
  word.addEventListener('change', show);
  layers.addEventListener('change', show);
  div.parentNode.insertBefore(box, div);
  Plotly.relayout(div, {updatemenus: []});
  const overlays = meta.combos.map(c => c[3]).filter(j => div.data[j].z === undefined);
  if (overlays.length) Plotly.restyle(div, {z: overlays.map(j => div.data[j + 1].z)}, overlays);
}
window.addEventListener('load', () => document.querySelectorAll('.plotly-graph-div').forEach(heatMenus));
"""


PLOTLY_JS = Path(__file__).parent / "plotly" / "plotly-cartesian.min.js"
PLOTLY_JS_VERSION = "4.1.1"
# the trace types of that bundle (its README); a figure with another type would stay blank
BUNDLED_TRACES = frozenset({"bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour", "image", "pie",
                            "scatter", "scatterternary", "violin"})


@dataclass(frozen=True)
class Section:
    """A heading, an optional note (plain text) and a figure (None: the note alone, e.g. why
    an analysis has nothing to show)."""

    heading: str
    figure: go.Figure | None
    note: str = ""


def _flat(settings: Mapping[str, object], prefix: str = "") -> list[tuple[str, str]]:
    """Rows (key, value) of nested settings: nested keys joined by " / ", lists by commas,
    plain values as written (no JSON quotes or braces)."""
    rows = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += _flat(value, f"{name} / ") if value else [(name, "")]
        elif isinstance(value, (list, tuple)):
            simple = all(not isinstance(v, (Mapping, list, tuple)) for v in value)
            rows.append((name, ", ".join(map(str, value)) if simple else json.dumps(value, default=str)))
        else:
            rows.append((name, "" if value is None else str(value)))
    return rows


def _settings_table(settings: Mapping[str, object]) -> str:
    rows = "".join(f"<tr><td>{html.escape(key)}</td><td>{html.escape(value)}</td></tr>" for key, value in _flat(settings))
    return f'<table class="settings">{rows}</table>'


def _without_overlay_copies(figure: go.Figure) -> go.Figure:
    """A heat-map figure whose overlay traces leave out their values, which equal those of the
    side-by-side trace after each (layout.meta.heat.combos[k][3] and the next trace): the page
    copies them back at load, and the heat maps weigh half (a per-step slider's values still
    travel for both traces)."""
    heat = (figure.layout.meta or {}).get("heat") if isinstance(figure.layout.meta, dict) else None
    if not heat:
        return figure
    light = go.Figure(figure)
    for *_, overlay in heat["combos"]:
        light.data[overlay].z = None
    return light


def render_dashboard(title: str, sections: Sequence[Section], settings: Mapping[str, object] | None = None) -> str:
    """The dashboard as one HTML string (plotly.js's cartesian bundle embedded once).

    Raises:
        ValueError: a figure with a trace type the bundle does not draw (names it and the section).
    """
    for section in sections:
        unknown = {trace.type for trace in (section.figure.data if section.figure is not None else ())} - BUNDLED_TRACES
        if unknown:
            raise ValueError(f"section {section.heading!r} has trace type(s) {sorted(unknown)}, which the dashboard's plotly.js "
                             f"bundle does not draw; use one of {sorted(BUNDLED_TRACES)}")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>",
        f"<script type='text/javascript'>{PLOTLY_JS.read_text(encoding='utf-8')}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if settings:
        parts.append("<h2>Settings</h2>" + _settings_table(settings))
    for i, section in enumerate(sections):
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        if section.note:
            parts.append(f"<p class='note'>{html.escape(section.note)}</p>")
        if section.figure is None:
            continue
        # figure JSON is escaped by plotly for a <script> context (no raw "</script>")
        parts.append(_without_overlay_copies(section.figure).to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{i}"))
    parts.append(f"<script type='text/javascript'>{HEAT_MENUS}</script></body></html>")
    return "\n".join(parts)


def write_dashboard(path: str | Path, title: str, sections: Sequence[Section], settings: Mapping[str, object] | None = None) -> Path:
    """Write the dashboard atomically; returns its path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(render_dashboard(title, sections, settings), encoding="utf-8")
    return path
