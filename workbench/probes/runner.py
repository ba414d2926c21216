"""`workbench run PROBE --out RUN_DIR`: run a probe's analyses into a run directory.

    RUN_DIR/run.json          versions, seed, settings, timings, the status of every part
    RUN_DIR/probe.toml        the probe as it was run
    RUN_DIR/<analysis>/       tables (*.parquet), tensors (*.safetensors), json
    RUN_DIR/figures/*.json    plotly figures;  RUN_DIR/dashboard.html  all of them, offline

Each analysis part is written to a temporary folder and renamed when complete, so a rerun of
an interrupted run skips the finished parts and recomputes only the rest. A run directory
written by another workbench version or for other settings is refused, never mixed.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from ..files import atomic_path, remove_leftovers
from .context import Context, ModelCache
from .parts import CHECKS, PARTS
from .record import RUN_FORMAT, RunDirectoryError, read_record, versions, write_record
from .report import write_run_dashboard
from .spec import Probe, load_probe

def _existing_record(run_dir: Path, probe: Probe) -> dict | None:
    """The record of the run to continue in `run_dir` (None for a new run); refuses another
    version's or probe's run and a folder that is not a run. Reads only."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir} is a file, not a folder; choose a new --out")
    if not (run_dir / "run.json").exists():
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunDirectoryError(f"{run_dir} exists, is not empty and has no run.json; choose a new --out")
        return None
    record = read_record(run_dir)
    version = versions()["workbench"]
    if record["versions"]["workbench"] != version:
        raise RunDirectoryError(
            f"{run_dir} was written by workbench {record['versions']['workbench']}, this is {version}; "
            "results of two versions are not mixed: choose a new --out or delete the folder"
        )
    if record["fingerprint"] != probe.fingerprint():
        raise RunDirectoryError(
            f"{run_dir} holds a run of probe {record['settings']['name']!r} with other settings; "
            "choose a new --out or delete the folder"
        )
    return record


def _check_same_model(run_dir: Path, record: dict, model: dict) -> None:
    before = [e["sha256"] for e in record.get("model", {}).get("embeddings", [])]
    if before != [e["sha256"] for e in model["embeddings"]]:
        raise RunDirectoryError(f"{run_dir} was run with other contents of the learned-word files; choose a new --out or delete the folder")


def _new_record(run_dir: Path, probe: Probe, model: dict) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "probe.toml").write_text(probe.text, encoding="utf-8")
    record = {
        "format": RUN_FORMAT, "probe_file": probe.source, "fingerprint": probe.fingerprint(), "seed": probe.seed,
        "settings": probe.settings(), "model": model, "versions": versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "parts": {},
    }
    write_record(run_dir, record)
    return record


def run_probe(probe: str | Path | Probe, out: str | Path, pipe=None, dashboard: bool = True, models: ModelCache | None = None) -> Path:
    """Run every analysis of the probe into `out` (resuming a previous run there).

    The model is loaded and every section checked against it before anything is written, so
    a probe that cannot run leaves no folder behind and its corrected rerun is not blocked.

    Args:
        probe: a probe file, or a `Probe` from `parse_probe(text)`.
        out: the run directory.
        pipe: a pipeline already in memory (learned words inserted, LoRA loaded, ...), used
            instead of [model] pipeline and embeddings; a notebook user gets the same run
            directory and dashboard as `workbench run`.
        dashboard: write RUN_DIR/dashboard.html at the end.
        models: pipelines already loaded by earlier runs (a sweep's), served by [model] settings.

    Returns:
        The run directory.

    Raises:
        FileNotFoundError, ProbeError: the probe file is missing or malformed, or a section
            cannot run on the model (says why).
        RunDirectoryError: `out` holds another version's or another probe's results.

    Example:
        >>> run_probe(parse_probe(open("probe.toml").read(), "probe.toml"), "runs/mine", pipe=my_pipe)
    """
    probe = probe if isinstance(probe, Probe) else load_probe(probe)
    if pipe is not None:  # the run is of this object, not of the folder the probe names
        probe = replace(probe, model={**probe.model, "pipeline": f"in memory: {type(pipe).__name__}", "embeddings": []})
    run_dir = Path(out)
    record = _existing_record(run_dir, probe)
    ctx = Context(probe, run_dir, given_pipe=pipe, models=models)
    todo = [name for name in probe.analyses if not (run_dir / name / "part.json").is_file()]
    if todo:
        ctx.check()
        for name in todo:
            if name in CHECKS:
                CHECKS[name](ctx, probe.analyses[name])
        model = ctx.model_record()
        if record is not None:
            _check_same_model(run_dir, record, model)
        else:
            record = _new_record(run_dir, probe, model)
    for name in tqdm(todo, desc=f"probe {probe.name}", unit="analysis"):
        tic = time.perf_counter()
        remove_leftovers(run_dir / name)  # a part whose process was killed mid-write
        with atomic_path(run_dir / name) as tmp:
            tmp.mkdir()
            summary = PARTS[name](ctx, probe.analyses[name], tmp)
            (tmp / "part.json").write_text(json.dumps({"analysis": name, "summary": summary}, indent=1, default=str))
        record["parts"][name] = {"seconds": round(time.perf_counter() - tic, 2), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "summary": summary}
        write_record(run_dir, record)
    if dashboard:
        write_run_dashboard(run_dir)
    return run_dir
