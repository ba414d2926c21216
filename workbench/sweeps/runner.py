"""`workbench sweep SWEEP --out DIR`: every cell of a sweep into its own run directory.

    DIR/sweep.json              the sweep's settings and fingerprint (a rerun resumes only the same sweep)
    DIR/cells/<cell>/           one probe run directory per cell (see probes.runner)
    DIR/index.parquet           one row per cell: its axis values, status, seconds, error
    DIR/tables/<analysis>/<table>.parquet   every cell's table, with the cell and its axis values as columns
    DIR/sweep.log               what happened to each cell, tracebacks included
    DIR/dashboard.html          each headline measure against each axis, with intervals

Cells run in this process one after another (engine "local"), or on Ray workers (engine "ray",
see ray_engine), grouped by model so that each pipeline is loaded once per worker. A cell that
fails records its error and the others go on; a cell's run directory is written part by part
through the same atomic renames as any run, so a rerun skips finished cells and redoes the rest.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..files import atomic_path
from ..probes.context import ModelCache
from ..probes.record import RunDirectoryError, read_record
from .cells import model_key, run_cell
from .spec import Cell, Sweep, SweepError, load_sweep

SWEEP_FORMAT = 1
INDEX_COLUMNS = ["cell", "status", "seconds", "error"]


def _check_folder(out: Path, sweep: Sweep) -> None:
    """Refuse a folder holding another sweep (or anything else); reads only."""
    record = out / "sweep.json"
    if record.exists():
        found = json.loads(record.read_text())
        if found.get("fingerprint") != sweep.fingerprint():
            raise RunDirectoryError(f"{out} holds sweep {found.get('name')!r} with other settings or cells; choose a new --out or delete the folder")
    elif out.exists() and any(out.iterdir()):
        raise RunDirectoryError(f"{out} exists, is not empty and has no sweep.json; choose a new --out")


def cell_done(run_dir: Path, cell: Cell) -> bool:
    """Whether the cell's run directory holds every part of its probe."""
    try:
        record = read_record(run_dir)
    except (FileNotFoundError, RunDirectoryError):
        return False
    return record.get("fingerprint") == cell.probe.fingerprint() and all(name in record["parts"] for name in cell.probe.analyses)


def _axis_values(cell: Cell) -> dict:
    """The cell's axis values as table columns take them (lists as JSON text)."""
    return {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in cell.values.items()}


def _row(cell: Cell, status: str, seconds: float | None, error: str | None) -> dict:
    return {"cell": cell.id, **_axis_values(cell), "status": status, "seconds": seconds, "error": error}


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def merge_tables(out: Path, sweep: Sweep, done: list[Cell]) -> list[Path]:
    """Concatenate each table of the finished cells into DIR/tables/<analysis>/<table>.parquet,
    with the cell id and its axis values as the first columns."""
    tables: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for cell in done:
        for path in sorted((out / "cells" / cell.id).glob("*/*.parquet")):
            frame = pd.read_parquet(path)
            front = {"cell": cell.id, **_axis_values(cell)}
            tables.setdefault((path.parent.name, path.stem), []).append(frame.assign(**front)[[*front, *frame.columns]])
    written = []
    for (analysis, name), frames in tables.items():
        target = out / "tables" / analysis / f"{name}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_parquet(pd.concat(frames, ignore_index=True), target)
        written.append(target)
    return written


def _in_process(sweep: Sweep, cells: list[Cell], out: Path, **options):
    """The default engine: the cells one after another in this process, one model load per model."""
    models = ModelCache()
    for cell in cells:
        yield cell, run_cell(cell, out / "cells" / cell.id, models, sweep.cpus)


ENGINES = {"local": _in_process}


def run_sweep(sweep: str | Path | Sweep, out: str | Path, engine: str = "local", dashboard: bool = True, **options) -> pd.DataFrame:
    """Run every cell of the sweep into `out` (resuming: finished cells are skipped).

    Args:
        engine: "local" (this process, one cell after another) or "ray" (Ray workers; options:
            `address` of a cluster, "auto" for the running one, or None for a local instance;
            `workers`, the number of worker processes; `retries` of a cell whose worker died).
        dashboard: write DIR/dashboard.html (each headline measure against each axis).

    Returns:
        The index: one row per cell (cell, its axis values, status "done" / "failed", seconds,
        error), also written to DIR/index.parquet.

    Raises:
        FileNotFoundError, SweepError: the sweep file is missing or malformed, an unknown engine,
            or Ray asked for and not installed.
        RunDirectoryError: `out` holds another sweep, or other files.
    """
    sweep = sweep if isinstance(sweep, Sweep) else load_sweep(sweep)
    if engine == "ray":
        from .ray_engine import import_ray, on_ray

        import_ray()  # before anything is written
        ENGINES["ray"] = on_ray
    if engine not in ENGINES:
        raise SweepError(f"engine must be \"local\" or \"ray\", got {engine!r}")
    out = Path(out)
    _check_folder(out, sweep)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    record = {"format": SWEEP_FORMAT, "name": sweep.name, "description": sweep.description, "fingerprint": sweep.fingerprint(),
              "base_probe": sweep.base.source, "axes": list(sweep.axes), "cells": {c.id: c.values for c in sweep.cells}}
    with atomic_path(out / "sweep.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str))
    rows: dict[str, dict] = {}
    todo = []
    for cell in sorted(sweep.cells, key=model_key):  # one model's cells together: each pipeline stays loaded for them
        run_dir = out / "cells" / cell.id
        if cell_done(run_dir, cell):
            rows[cell.id] = _row(cell, "done", round(sum(p["seconds"] for p in read_record(run_dir)["parts"].values()), 2), None)
        else:
            todo.append(cell)
    loads: dict[str, int] = {}
    stamp = lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: E731
    with open(out / "sweep.log", "a", encoding="utf-8") as log, \
            tqdm(total=len(sweep.cells), initial=len(rows), desc=f"sweep {sweep.name} ({engine})", unit="cell") as bar:
        log.write(f"{stamp()} sweep {sweep.name}: {len(todo)} of {len(sweep.cells)} cells to run, engine {engine}\n")
        for cell, result in ENGINES[engine](sweep, todo, out, **options):
            rows[cell.id] = _row(cell, result["status"], result["seconds"], result["error"])
            loads[result.get("worker", "local")] = result["model_loads"]
            log.write(f"{stamp()} {cell.id} {json.dumps(cell.values)} {result['status']} in {result['seconds']} s"
                      + (f" on {result['worker']}" if "worker" in result else "") + "\n" + (result["traceback"] or ""))
            log.flush()
            failed = sum(r["status"] == "failed" for r in rows.values())
            bar.set_postfix(done=len(rows) - failed, failed=failed, running=result.get("running", 0), models_loaded=sum(loads.values()))
            bar.update()
    index = pd.DataFrame([rows[c.id] for c in sweep.cells])
    index = index[["cell", *sweep.axes, *[c for c in INDEX_COLUMNS if c != "cell"]]]
    _write_parquet(index, out / "index.parquet")
    record["model_loads"] = sum(loads.values())  # in this run of the sweep (0 when every cell was done)
    with atomic_path(out / "sweep.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str))
    merge_tables(out, sweep, [c for c in sweep.cells if rows[c.id]["status"] == "done"])
    if dashboard:
        from .report import write_sweep_dashboard

        write_sweep_dashboard(out)
    return index
