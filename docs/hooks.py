"""MkDocs hook: the probe key table is generated from the probe schema, so the page can never
disagree with what the probe reader accepts (`<!-- probe-keys -->` in how-to/write-a-probe.md)."""

from __future__ import annotations

import html

PLACEHOLDER = "<!-- probe-keys -->"


def _default(value) -> str:
    from workbench.probes.spec import REQUIRED

    if value is REQUIRED:
        return "(required)"
    if value is None:
        return "unset"
    return f"`{value!r}`".replace("'", '"') if not isinstance(value, bool) else f"`{str(value).lower()}`"


def probe_key_table() -> str:
    from workbench.probes.spec import CHOICES, SCHEMA

    names = {str: "string", int: "integer", float: "number", bool: "true/false", list: "list of strings"}
    rows = ["| section | key | type | default | what it means |", "|---|---|---|---|---|"]
    for section, keys in SCHEMA.items():
        for key, (types, default, meaning) in keys.items():
            kinds = " or ".join(names[t] for t in types)
            if (section, key) in CHOICES:
                kinds += ": " + ", ".join(f'"{c}"' for c in CHOICES[(section, key)])
            meaning = html.escape(meaning, quote=False).replace("|", "\\|")  # "<prompt>_<region>.png" stays text
            rows.append(f"| {f'[{section}]' if section else '(top level)'} | `{key}` | {kinds} | {_default(default)} | {meaning} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if PLACEHOLDER in markdown:
        markdown = markdown.replace(PLACEHOLDER, probe_key_table())
    return markdown


# Tutorials are executed while the site is built. Plotly's default output in a kernel is its own
# mimetype, which HTML export drops; the kernels of this build draw figures as HTML divs instead,
# and the site carries one local copy of plotly.js (nothing is fetched from a CDN).
PLOTLY_JS = "assets/plotly.min.js"
KERNEL_STARTUP = '''
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer


class SiteRenderer(MimetypeRenderer):
    def to_mimebundle(self, fig_dict):
        html = pio.to_html(fig_dict, include_plotlyjs=False, include_mathjax=False, full_html=False, default_width="100%", validate=False)
        return {"text/html": html}


pio.renderers["workbench_site"] = SiteRenderer()
pio.renderers.default = "workbench_site"
'''


def on_config(config):
    import os
    import tempfile
    from pathlib import Path

    profile = Path(tempfile.mkdtemp(prefix="workbench-docs-ipython-")) / "profile_default" / "startup"
    profile.mkdir(parents=True)
    (profile / "00-plotly-site.py").write_text(KERNEL_STARTUP)
    os.environ["IPYTHONDIR"] = str(profile.parents[1])
    config["extra_javascript"].append(PLOTLY_JS)
    return config


def on_files(files, config):
    from mkdocs.structure.files import File
    from plotly.offline import get_plotlyjs

    files.append(File.generated(config, PLOTLY_JS, content=get_plotlyjs()))
    return files
