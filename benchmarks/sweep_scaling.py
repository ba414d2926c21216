"""Does a sweep scale over Ray workers? Writes benchmarks/results/sweep_scaling.json.

The same 8-cell sweep (the embedded ShapesWorld model, [attention] on 16 held-out captions at 25
steps, 8 seeds) in this process and on a local Ray instance with 1 and 2 workers of one thread
each; every run starts from an empty folder, and the in-process run uses one thread too, so the
three do the same work. Goals (2 cores): speed-up of 2 workers over 1 >= 1.7, one model load per
worker, 1 worker / in-process time <= 1.15.

    python benchmarks/sweep_scaling.py [--cells 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import workbench
from workbench.files import atomic_path
from workbench.sweeps import parse_sweep, run_sweep

RESULT = Path(__file__).parent / "results" / "sweep_scaling.json"


def sweep_files(folder: Path, cells: int) -> Path:
    (folder / "probe.toml").write_text('name = "scaling"\n[model]\npipeline = "shapes"\nsteps = 25\n'
                                       "[inputs]\nscenes = 16\n[attention]\n")
    seeds = ", ".join(str(s) for s in range(cells))
    (folder / "sweep.toml").write_text(f'name = "scaling"\nprobe = "probe.toml"\n[axes]\nseed = [{seeds}]\n[resources]\ncpus = 1\n')
    return folder / "sweep.toml"


def timed(sweep_file: Path, engine: str, **options) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"sweep-{engine}-"))
    shutil.rmtree(out)
    tic = time.perf_counter()
    index = run_sweep(parse_sweep(sweep_file.read_text(), str(sweep_file)), out, engine=engine, dashboard=False, **options)
    seconds = time.perf_counter() - tic
    loads = json.loads((out / "sweep.json").read_text())["model_loads"]
    shutil.rmtree(out, ignore_errors=True)
    assert (index.status == "done").all(), index[index.status != "done"]
    return {"seconds": round(seconds, 2), "cells_per_second": round(len(index) / seconds, 4), "model_loads": loads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=8)
    args = parser.parse_args()
    import ray

    folder = Path(tempfile.mkdtemp(prefix="sweep-scaling-"))
    sweep_file = sweep_files(folder, args.cells)
    runs = {"in_process": timed(sweep_file, "local")}
    for workers in (1, 2):
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            runs[f"ray_{workers}_workers"] = timed(sweep_file, "ray", workers=workers)
        finally:
            ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)
    one, two = runs["ray_1_workers"], runs["ray_2_workers"]
    result = {
        "cells": args.cells,
        "runs": runs,
        "speedup_2_workers": round(two["cells_per_second"] / one["cells_per_second"], 3),
        "overhead_vs_in_process": round(one["seconds"] / runs["in_process"]["seconds"], 3),
        "model_loads": {name: run["model_loads"] for name, run in runs.items()},
        "goals": {"speedup_2_workers": 1.7, "model_loads": "one per worker per model", "overhead_vs_in_process": 1.15},
        "settings": {"probe": "[attention] on 16 held-out captions, 25 steps, the embedded model; one thread per cell",
                     "cpu_count": os.cpu_count(), "platform": platform.platform(), "workbench": workbench.__version__,
                     "ray": ray.__version__},
    }
    with atomic_path(RESULT) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
