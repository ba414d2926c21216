"""One self-contained HTML dashboard per run: plotly.js inside, no network, every user string escaped."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from ..files import atomic_path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table.settings { border-collapse: collapse; font-size: 0.9rem; } table.settings td { border: 1px solid #ddd; padding: 2px 8px; }
p.note { color: #555; }
"""


@dataclass(frozen=True)
class Section:
    """A heading, an optional note (plain text) and a figure (None: the note alone, e.g. why
    an analysis has nothing to show)."""

    heading: str
    figure: go.Figure | None
    note: str = ""


def _settings_table(settings: Mapping[str, object]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(key))}</td><td>{html.escape(value if isinstance(value, str) else json.dumps(value, default=str))}</td></tr>"
        for key, value in settings.items()
    )
    return f'<table class="settings">{rows}</table>'


def render_dashboard(title: str, sections: Sequence[Section], settings: Mapping[str, object] | None = None) -> str:
    """The dashboard as one HTML string (plotly.js embedded once)."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
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
        parts.append(section.figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{i}"))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_dashboard(path: str | Path, title: str, sections: Sequence[Section], settings: Mapping[str, object] | None = None) -> Path:
    """Write the dashboard atomically; returns its path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(render_dashboard(title, sections, settings), encoding="utf-8")
    return path
