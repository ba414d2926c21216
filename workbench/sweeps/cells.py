"""Running one cell of a sweep, the same way on every engine."""

from __future__ import annotations

import time
import traceback
from pathlib import Path

from ..probes.context import ModelCache, model_identity
from ..probes.runner import run_probe
from .spec import Cell


def model_key(cell: Cell) -> str:
    """What makes two cells share a loaded pipeline (`probes.context.model_identity`)."""
    return model_identity(cell.probe.model)


def run_cell(cell: Cell, run_dir: Path, models: ModelCache, threads: int = 0) -> dict:
    """Run one cell's probe into its run directory; never raises: a failure is reported.

    Returns:
        {"status": "done" or "failed", "seconds", "error" (one line), "traceback", "model_loads"}
    """
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    tic = time.perf_counter()
    try:
        run_probe(cell.probe, run_dir, dashboard=False, models=models)
        status, error, trace = "done", None, None
    except Exception as failure:  # a cell's failure is recorded, and the others go on
        status, error, trace = "failed", f"{type(failure).__name__}: {failure}", traceback.format_exc()
    finally:
        torch.set_num_threads(previous)
    return {"status": status, "seconds": round(time.perf_counter() - tic, 2), "error": error, "traceback": trace, "model_loads": models.loads}
