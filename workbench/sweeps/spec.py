"""Sweep files: one probe run over many values of its settings, checked key by key.

    name = "leakage-over-checkpoints"
    probe = "concept-leakage.toml"      # the base probe, relative to this file
    combine = "grid"                    # "grid": every combination of the axes; "list": the [[cells]]
    prompt_chunks = 0                   # > 0: the base probe's prompts split into this many chunks, an axis
    [axes]                              # "section.key" (or "seed") = the values it takes
    "model.pipeline" = ["checkpoints/step-1000", "checkpoints/step-2000"]
    seed = [0, 1, 2]
    [[cells]]                           # with combine = "list": each cell's values
    seed = 0
    "model.pipeline" = "checkpoints/step-1000"
    [resources]                         # what each cell asks for
    cpus = 1                            # torch threads per cell (0: torch's default in this process, 1 under Ray)
    gpus = 0                            # GPUs per cell under Ray (its probe's [model] device = "cuda" uses them)

Every cell's probe is the base probe with the cell's values put in, checked as a probe file is;
an error names the sweep file, the line of the axis, the cell and what the probe reader said.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..probes.spec import ANALYSES, SCHEMA, Probe, ProbeError, load_probe, parse_probe, read_toml_text

TOP_KEYS = {
    "name": "a short name for the sweep",
    "description": "what question the sweep answers",
    "probe": "the base probe file, relative to the sweep file",
    "combine": '"grid" (every combination of the axes) or "list" (the [[cells]] tables)',
    "prompt_chunks": "split the base probe's prompts into this many chunks, one cell each (0: no)",
}
SECTIONS = ("axes", "cells", "resources")
RESOURCES = {"cpus": "torch threads per cell (0: torch's default in this process, 1 under Ray)", "gpus": "GPUs per cell under Ray"}
PROMPT_CHUNK = "prompt_chunk"  # the axis column of a chunk of the prompts


class SweepError(ValueError):
    """A sweep file that cannot be run as written."""


@dataclass(frozen=True)
class Cell:
    """One run of the sweep: its id (its folder's name), the axis values and the probe."""

    id: str
    values: dict[str, Any]
    probe: Probe


@dataclass(frozen=True)
class Sweep:
    name: str
    description: str
    base: Probe
    axes: tuple[str, ...]
    cells: tuple[Cell, ...]
    cpus: int = 0
    gpus: float = 0
    source: str = field(default="", compare=False)

    def fingerprint(self) -> str:
        """Changes when the base probe or any cell changes (a sweep folder checks it before resuming)."""
        cells = [[cell.id, cell.probe.fingerprint()] for cell in self.cells]
        return hashlib.sha256(json.dumps([self.name, cells]).encode()).hexdigest()[:16]


def _line(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith((f'"{key}"', f"{key} ", f"{key}=")):
            return number
    return None


def _where(path: str, text: str, key: str) -> str:
    line = _line(text, key)
    return f"{path}" + (f", line {line}" if line else "")


def _setting(path: str, text: str, key: str, base: Probe) -> tuple[str, str]:
    """(section, key) of an axis name: "seed" or "section.key" of a section the base probe has."""
    section, _, name = key.rpartition(".")
    if section not in SCHEMA:
        raise SweepError(f"{_where(path, text, key)}: axis {key!r} is not a probe setting; write \"seed\" or \"section.key\" "
                         f"with a section of {', '.join(s for s in SCHEMA if s)}")
    if name not in SCHEMA[section] or (section == "" and name != "seed"):
        accepted = ["seed"] if section == "" else list(SCHEMA[section])
        raise SweepError(f"{_where(path, text, key)}: axis {key!r}: [{section or 'top level'}] has no key {name!r} to vary; "
                         f"accepted: {', '.join(accepted)}")
    if section in ANALYSES and section not in base.analyses:
        raise SweepError(f"{_where(path, text, key)}: axis {key!r} varies [{section}], which the base probe {base.source} does not run")
    return section, name


def probe_text(settings: dict[str, Any]) -> str:
    """A probe's TOML from its settings (`Probe.settings()`), unset values left out."""
    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v) if isinstance(v, str) else repr(v)

    lines = [f"{key} = {value(settings[key])}" for key in ("name", "description", "seed")]
    for section in ("model", "inputs", *ANALYSES):
        if section in settings:
            lines.append(f"\n[{section}]")
            lines += [f"{key} = {value(v)}" for key, v in settings[section].items() if v is not None]
    return "\n".join(lines) + "\n"


def _cell_probe(path: str, text: str, base: Probe, values: dict[str, Any], where: str) -> Probe:
    settings = json.loads(json.dumps(base.settings()))  # a deep copy
    for key, v in values.items():
        if key in (PROMPT_CHUNK, "_prompts"):
            continue
        section, name = _setting(path, text, key, base)
        (settings if section == "" else settings[section])[name] = v
    if PROMPT_CHUNK in values:
        settings["inputs"]["prompts"] = values["_prompts"]
    try:
        return parse_probe(probe_text(settings), f"{base.source} in {where}")
    except ProbeError as error:
        raise SweepError(f"{where}: {error}") from None


def parse_sweep(text: str, path: str = "<sweep>") -> Sweep:
    """Check a sweep's TOML text (see the module docstring); `path` names it in errors and
    anchors the base probe's relative path."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SweepError(f"{path}: not valid TOML: {error}") from None
    for key in raw:
        if key not in TOP_KEYS and key not in SECTIONS:
            raise SweepError(f"{_where(path, text, key)}: unknown key {key!r}; accepted: {', '.join([*TOP_KEYS, '[axes]', '[[cells]]', '[resources]'])}")
    for key in ("name", "probe"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise SweepError(f"{path}: {key!r} must be a string ({TOP_KEYS[key]})")
    combine = raw.get("combine", "grid")
    if combine not in ("grid", "list"):
        raise SweepError(f"{_where(path, text, 'combine')}: combine = {combine!r}; expected \"grid\" or \"list\"")
    chunks = raw.get("prompt_chunks", 0)
    if not isinstance(chunks, int) or isinstance(chunks, bool) or chunks < 0:
        raise SweepError(f"{_where(path, text, 'prompt_chunks')}: prompt_chunks must be a whole number >= 0, got {chunks!r}")
    resources = raw.get("resources", {})
    if not isinstance(resources, dict):
        raise SweepError(f"{path}: [resources] must be a table: {', '.join(f'{k} ({v})' for k, v in RESOURCES.items())}")
    for key, value in resources.items():
        if key not in RESOURCES:
            raise SweepError(f"{_where(path, text, key)}: unknown key {key!r} in [resources]; accepted: {', '.join(RESOURCES)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (key == "cpus" and not isinstance(value, int)):
            raise SweepError(f"{_where(path, text, key)}: [resources] {key} must be a number >= 0 ({RESOURCES[key]}), got {value!r}")
    base_path = Path(path).parent / raw["probe"]
    try:
        base = load_probe(base_path)
    except (FileNotFoundError, ProbeError) as error:
        raise SweepError(f"{_where(path, text, 'probe')}: the base probe: {error}") from None

    if combine == "grid":
        if "cells" in raw:
            raise SweepError(f"{path}: [[cells]] are listed combinations; set combine = \"list\" to use them (grid takes [axes])")
        axes = raw.get("axes", {})
        if not isinstance(axes, dict):
            raise SweepError(f"{path}: [axes] must be a table of \"section.key\" = [values]")
        for key, values in axes.items():
            _setting(path, text, key, base)
            if not isinstance(values, list) or not values:
                raise SweepError(f"{_where(path, text, key)}: axis {key!r} must be a non-empty list of values, got {values!r}")
        names = list(axes)
        combos = [dict(zip(names, combo)) for combo in itertools.product(*axes.values())]
    else:
        if "axes" in raw:
            raise SweepError(f"{path}: combine = \"list\" takes [[cells]], not [axes]")
        combos = raw.get("cells", [])
        if not isinstance(combos, list) or not combos or not all(isinstance(c, dict) for c in combos):
            raise SweepError(f"{path}: combine = \"list\" needs [[cells]] tables, one per cell")
        names = list(dict.fromkeys(key for combo in combos for key in combo))
        for key in names:
            _setting(path, text, key, base)
        missing = [i for i, combo in enumerate(combos) if set(combo) != set(names)]
        if missing:
            raise SweepError(f"{path}: every [[cells]] table must set the same keys ({', '.join(names)}); cell {missing[0]} does not")

    if chunks:
        prompts = base.inputs["prompts"]
        if len(prompts) < chunks:
            raise SweepError(f"{_where(path, text, 'prompt_chunks')}: prompt_chunks = {chunks}, but the base probe has "
                             f"{len(prompts)} prompt(s) (prompts = [...] in its [inputs])")
        size = -(-len(prompts) // chunks)
        pieces = [prompts[i: i + size] for i in range(0, len(prompts), size)]
        combos = [{**combo, PROMPT_CHUNK: k, "_prompts": piece} for combo in combos for k, piece in enumerate(pieces)]
        names.append(PROMPT_CHUNK)
    cells = []
    for number, combo in enumerate(combos):
        cell_id = f"cell-{number:03d}"
        shown = {k: v for k, v in combo.items() if k != "_prompts"}
        probe = _cell_probe(path, text, base, combo, f"{path}: {cell_id} {json.dumps(shown)}")
        cells.append(Cell(cell_id, shown, probe))
    return Sweep(name=raw["name"], description=raw.get("description", ""), base=base, axes=tuple(names), cells=tuple(cells),
                 cpus=resources.get("cpus", 0), gpus=resources.get("gpus", 0), source=path)


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file.

    Raises:
        FileNotFoundError: the file does not exist (named).
        SweepError: an unknown key, a bad axis or a cell the probe reader refuses (names the line).
    """
    return parse_sweep(read_toml_text(path, "sweep", SweepError), str(path))
