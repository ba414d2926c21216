"""Sweeps on Ray: a local instance with 2 worker processes on the CPU (loopback only). Cells
equal the in-process run's, each model loads once per worker, a killed worker's cell is retried
or reported and a rerun completes it, with nothing lost or duplicated."""

import json
import threading
import time

import pandas as pd
import pytest
from safetensors.torch import load_file

from workbench.sweeps import parse_sweep, run_sweep

from .test_sweeps import sweep_text

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def grid(checkpoints, extra_pipelines=()) -> str:
    pipelines = [str(checkpoints / "step-0"), str(checkpoints / "step-1"), *extra_pipelines]
    return f'"model.pipeline" = {json.dumps(pipelines)}\nseed = [0, 1, 2]\n[resources]\ncpus = 1\n'


def same_cells(a, b, cells) -> None:
    for cell in cells:
        for table in ("leakage", "localisation", "overlap"):
            left = pd.read_parquet(a / "cells" / cell / "attention" / f"{table}.parquet")
            assert left.equals(pd.read_parquet(b / "cells" / cell / "attention" / f"{table}.parquet")), (cell, table)
        maps = [load_file(str(d / "cells" / cell / "attention" / "maps.safetensors")) for d in (a, b)]
        assert maps[0].keys() == maps[1].keys() and all((maps[0][k] == maps[1][k]).all() for k in maps[0]), cell


def test_ray_cells_equal_the_in_process_cells_and_each_model_loads_once_per_worker(local_ray, checkpoints, tmp_path):
    sweep = parse_sweep(sweep_text(checkpoints, grid(checkpoints, [str(checkpoints / "nowhere")])), str(checkpoints / "s.toml"))
    here = run_sweep(sweep, tmp_path / "here")
    there = run_sweep(sweep, tmp_path / "there", engine="ray")
    assert list(there.status) == list(here.status) == ["done"] * 6 + ["failed"] * 3
    assert there.error[8].startswith("ProbeError") and "nowhere" in there.error[8]
    same_cells(tmp_path / "here", tmp_path / "there", [f"cell-00{i}" for i in range(6)])
    loads = json.loads((tmp_path / "there" / "sweep.json").read_text())["model_loads"]
    assert 2 <= loads <= 4  # two models, two workers: at most one load per worker per model
    log = (tmp_path / "there" / "sweep.log").read_text()
    assert "engine ray" in log and " on workbench-sweep-" in log


def test_a_killed_worker_loses_and_duplicates_nothing(local_ray, checkpoints, tmp_path):
    sweep = parse_sweep(sweep_text(checkpoints, grid(checkpoints)), str(checkpoints / "s.toml"))
    out = tmp_path / "out"
    killed = []

    def kill_one_worker_mid_sweep():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            if any((out / "cells").glob("cell-*/run.json")):
                workers = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("workbench-sweep-")]
                if workers:
                    ray.kill(ray.get_actor(workers[0]["name"], namespace=workers[0]["namespace"]))
                    killed.append(workers[0]["name"])
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_one_worker_mid_sweep)
    watcher.start()
    index = run_sweep(sweep, out, engine="ray", retries=0)
    watcher.join()
    assert killed
    failed = index[index.status == "failed"]
    assert len(index) == 6 and set(index.status) <= {"done", "failed"}
    assert all(error.startswith("WorkerDied") for error in failed.error)
    again = run_sweep(sweep, out, engine="ray")
    assert list(again.status) == ["done"] * 6
    leakage = pd.read_parquet(out / "tables" / "attention" / "leakage.parquet")
    per_cell = [pd.read_parquet(out / "cells" / c / "attention" / "leakage.parquet") for c in again.cell]
    assert len(leakage) == sum(map(len, per_cell))  # every cell once
    records = [json.loads((out / "cells" / c / "run.json").read_text()) for c in again.cell]
    assert all(set(r["parts"]) == {"attention"} for r in records)
    assert not list(out.glob("cells/*/.*"))  # no half-written part left behind
