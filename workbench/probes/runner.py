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
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from ..files import atomic_path
from .parts import PARTS, Context
from .spec import Probe, load_probe

RUN_FORMAT = 1


class RunDirectoryError(ValueError):
    """The output folder holds something this run must not mix with."""


def _versions() -> dict[str, str]:
    import diffusers
    import numpy
    import torch
    import transformers

    from .. import __version__

    return {"workbench": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "diffusers": diffusers.__version__, "transformers": transformers.__version__, "numpy": numpy.__version__}


def _write_record(run_dir: Path, record: dict) -> None:
    with atomic_path(run_dir / "run.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str))


def read_record(run_dir: str | Path) -> dict:
    """run.json of a run directory (checked: it exists and is of this format)."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected a run directory written by `workbench run`")
    record = json.loads(path.read_text())
    if record.get("format") != RUN_FORMAT:
        raise RunDirectoryError(f"{path} has run format {record.get('format')!r}; this workbench reads format {RUN_FORMAT}")
    return record


def _open_run(run_dir: Path, probe: Probe, text: str) -> dict:
    """The run record to continue, or a new one; refuses another version's or probe's run."""
    versions = _versions()
    if (run_dir / "run.json").exists():
        record = read_record(run_dir)
        if record["versions"]["workbench"] != versions["workbench"]:
            raise RunDirectoryError(
                f"{run_dir} was written by workbench {record['versions']['workbench']}, this is {versions['workbench']}; "
                "results of two versions are not mixed: choose a new --out or delete the folder"
            )
        if record["fingerprint"] != probe.fingerprint():
            raise RunDirectoryError(
                f"{run_dir} holds a run of probe {record['settings']['name']!r} with other settings; "
                "choose a new --out or delete the folder"
            )
        return record
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RunDirectoryError(f"{run_dir} exists, is not empty and has no run.json; choose a new --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "probe.toml").write_text(text, encoding="utf-8")
    record = {
        "format": RUN_FORMAT, "probe_file": probe.source, "fingerprint": probe.fingerprint(), "seed": probe.seed,
        "settings": probe.settings(), "versions": versions, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "parts": {},
    }
    _write_record(run_dir, record)
    return record


def run_probe(probe_file: str | Path, out: str | Path, dashboard: bool = True) -> Path:
    """Run every analysis of the probe into `out` (resuming a previous run there).

    Returns:
        The run directory.

    Raises:
        FileNotFoundError, ProbeError: the probe file is missing or malformed.
        RunDirectoryError: `out` holds another version's or another probe's results.
    """
    probe = load_probe(probe_file)
    run_dir = Path(out)
    record = _open_run(run_dir, probe, Path(probe_file).read_text(encoding="utf-8"))
    ctx = Context(probe, run_dir)
    todo = [name for name in probe.analyses if not (run_dir / name / "part.json").is_file()]
    for name in tqdm(todo, desc=f"probe {probe.name}", unit="analysis"):
        tic = time.perf_counter()
        with atomic_path(run_dir / name) as tmp:
            tmp.mkdir()
            summary = PARTS[name](ctx, probe.analyses[name], tmp)
            (tmp / "part.json").write_text(json.dumps({"analysis": name, "summary": summary}, indent=1, default=str))
        record["parts"][name] = {"seconds": round(time.perf_counter() - tic, 2), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "summary": summary}
        _write_record(run_dir, record)
    if dashboard:
        from .report import write_run_dashboard

        write_run_dashboard(run_dir)
    return run_dir
