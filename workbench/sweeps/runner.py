"""`workbench sweep SWEEP --out DIR`: every cell of a sweep into its own run directory.

    DIR/sweep.json              the sweep's settings and fingerprint (a rerun resumes only the same sweep)
    DIR/cells/<cell>/           one probe run directory per cell (see probes.runner)
    DIR/index.parquet           one row per cell: its axis values, status, seconds, error
    DIR/tables/<analysis>/<table>.parquet   every cell's table, with the cell and its axis values as columns
    DIR/sweep.log               what happened to each cell, tracebacks included

Cells run in this process one after another, grouped by model so that each pipeline is loaded
once. A cell that fails records its error and the others go on; a cell's run directory is
written part by part through the same atomic renames as any run, so a rerun skips finished
cells and redoes the rest.
"""

from __future__ import annotations

import json
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..files import atomic_path
from ..probes.context import ModelCache
from ..probes.record import RunDirectoryError, read_record
from ..probes.runner import run_probe
from .spec import Cell, Sweep, load_sweep

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


def _model_key(cell: Cell) -> str:
    model = cell.probe.model
    return json.dumps([model["pipeline"], model["device"], model["dtype"], model["embeddings"]])


def _row(cell: Cell, status: str, seconds: float | None, error: str | None) -> dict:
    return {"cell": cell.id, **{k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in cell.values.items()},
            "status": status, "seconds": seconds, "error": error}


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
            axes = _row(cell, "", None, None)
            front = {"cell": cell.id, **{k: axes[k] for k in cell.values}}
            tables.setdefault((path.parent.name, path.stem), []).append(frame.assign(**front)[[*front, *frame.columns]])
    written = []
    for (analysis, name), frames in tables.items():
        target = out / "tables" / analysis / f"{name}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_parquet(pd.concat(frames, ignore_index=True), target)
        written.append(target)
    return written


def run_sweep(sweep: str | Path | Sweep, out: str | Path) -> pd.DataFrame:
    """Run every cell of the sweep into `out` (resuming: finished cells are skipped).

    Returns:
        The index: one row per cell (cell, its axis values, status "done" / "failed", seconds,
        error), also written to DIR/index.parquet.

    Raises:
        FileNotFoundError, SweepError: the sweep file is missing or malformed.
        RunDirectoryError: `out` holds another sweep, or other files.
    """
    sweep = sweep if isinstance(sweep, Sweep) else load_sweep(sweep)
    out = Path(out)
    _check_folder(out, sweep)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    record = {"format": SWEEP_FORMAT, "name": sweep.name, "description": sweep.description, "fingerprint": sweep.fingerprint(),
              "base_probe": sweep.base.source, "axes": list(sweep.axes), "cells": {c.id: c.values for c in sweep.cells}}
    with atomic_path(out / "sweep.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str))
    models = ModelCache()
    rows: dict[str, dict] = {}
    order = sorted(sweep.cells, key=_model_key)  # one model's cells together: each pipeline stays loaded for them
    with open(out / "sweep.log", "a", encoding="utf-8") as log, tqdm(total=len(order), desc=f"sweep {sweep.name}", unit="cell") as bar:
        stamp = lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: E731
        for cell in order:
            run_dir = out / "cells" / cell.id
            if cell_done(run_dir, cell):
                parts = read_record(run_dir)["parts"].values()
                rows[cell.id] = _row(cell, "done", round(sum(p["seconds"] for p in parts), 2), None)
            else:
                log.write(f"{stamp()} {cell.id} start {json.dumps(cell.values)}\n")
                tic = time.perf_counter()
                try:
                    run_probe(cell.probe, run_dir, dashboard=False, models=models)
                    seconds = round(time.perf_counter() - tic, 2)
                    rows[cell.id] = _row(cell, "done", seconds, None)
                    log.write(f"{stamp()} {cell.id} done in {seconds} s\n")
                except Exception as error:  # a cell's failure is recorded, and the others go on
                    seconds = round(time.perf_counter() - tic, 2)
                    rows[cell.id] = _row(cell, "failed", seconds, f"{type(error).__name__}: {error}")
                    log.write(f"{stamp()} {cell.id} failed after {seconds} s\n{traceback.format_exc()}\n")
                log.flush()
            failed = sum(r["status"] == "failed" for r in rows.values())
            bar.set_postfix(done=len(rows) - failed, failed=failed, models_loaded=models.loads)
            bar.update()
    index = pd.DataFrame([rows[c.id] for c in sweep.cells])
    index = index[["cell", *sweep.axes, *[c for c in INDEX_COLUMNS if c != "cell"]]]
    _write_parquet(index, out / "index.parquet")
    record["model_loads"] = models.loads  # in this run of the sweep (0 when every cell was done)
    with atomic_path(out / "sweep.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str))
    merge_tables(out, sweep, [c for c in sweep.cells if rows[c.id]["status"] == "done"])
    return index
