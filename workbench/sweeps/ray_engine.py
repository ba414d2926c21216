"""The Ray engine of sweeps: cells run on Ray actors, on this machine or on a cluster.

Each worker is an actor that keeps the pipelines it has loaded (a `ModelCache`) and is handed
cells of the model it already holds while any remain, so a model is loaded once per worker. A
cell asks for `[resources] cpus` CPUs (its torch threads) and `gpus` GPUs. A worker that dies
mid-cell (killed, out of memory, its node lost) is replaced and the cell retried up to `retries`
times, then reported as failed; its run directory holds only finished parts (atomic renames),
so a rerun of the sweep completes it. Cells write to the sweep folder directly: on a cluster it
must be on storage every node sees.
"""

from __future__ import annotations

import uuid
from collections import Counter, deque
from pathlib import Path

from ..probes.context import ModelCache
from .cells import model_key, run_cell
from .spec import Cell, Sweep, SweepError


def import_ray():
    """Ray, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise SweepError('the Ray engine needs Ray: pip install "concept-workbench[ray]"') from None
    return ray


class SweepWorker:
    """A Ray actor's state: the pipelines it has loaded, and its torch threads per cell."""

    def __init__(self, threads: int):
        self.models = ModelCache()
        self.threads = threads

    def run(self, cell: Cell, run_dir: str) -> dict:
        return run_cell(cell, Path(run_dir), self.models, self.threads)


def on_ray(sweep: Sweep, cells: list[Cell], out: Path, address: str | None = None, workers: int | None = None, retries: int = 1):
    """Run the cells on Ray actors; yields (cell, result) as each finishes (see `run_cell`),
    result["worker"] naming the actor that ran it.

    Args:
        address: a Ray cluster ("auto": the one this machine belongs to); None starts a local
            instance with `workers` CPUs (unless Ray is already initialised).
        workers: worker processes (default: as many as the cluster's CPUs allow, given `cpus`).
        retries: how often a cell whose worker died is tried again.
    """
    ray = import_ray()
    if not cells:
        return
    threads = max(1, sweep.cpus)
    started = not ray.is_initialized()
    if started:
        local = {"num_cpus": workers * threads} if address is None and workers else {}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **local)
    try:
        actor = ray.remote(num_cpus=threads, num_gpus=sweep.gpus, max_restarts=0)(SweepWorker)
        count = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
        count = min(count, len(cells))
        run_id = uuid.uuid4().hex[:8]
        generation = [0] * count  # bumped when a worker is replaced
        name = lambda i: f"workbench-sweep-{run_id}-{i}.{generation[i]}"  # noqa: E731  (listed by ray.util.list_named_actors)
        pool = [actor.options(name=name(i)).remote(threads) for i in range(count)]
        holding: list[str | None] = [None] * count  # the model each worker has loaded last
        loads: Counter = Counter()  # model loads per worker process, as last reported
        queues: dict[str, deque] = {}
        for cell in cells:
            queues.setdefault(model_key(cell), deque()).append(cell)
        attempts: Counter = Counter()
        pending: dict = {}

        def hand_out(i: int) -> None:
            key = holding[i] if queues.get(holding[i]) else max(queues, key=lambda k: len(queues[k]), default=None)
            if key is None or not queues[key]:
                return
            cell = queues[key].popleft()
            if not queues[key]:
                del queues[key]
            holding[i] = key
            pending[pool[i].run.remote(cell, str(out / "cells" / cell.id))] = (i, cell)

        for i in range(count):
            hand_out(i)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i, cell = pending.pop(ref)
            worker = name(i)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError as death:  # the worker process is gone: replace it
                generation[i] += 1
                pool[i] = actor.options(name=name(i)).remote(threads)
                holding[i] = None
                attempts[cell.id] += 1
                if attempts[cell.id] <= retries:
                    queues.setdefault(model_key(cell), deque()).appendleft(cell)
                else:
                    error = f"WorkerDied: the worker running this cell died {attempts[cell.id]} time(s) ({type(death).__name__}); rerun the sweep to retry"
                    yield cell, {"status": "failed", "seconds": None, "error": error, "traceback": None, "model_loads": loads[worker],
                                 "worker": worker, "running": len(pending)}
                hand_out(i)
                continue
            loads[worker] = result["model_loads"]
            yield cell, {**result, "worker": worker, "running": len(pending)}
            hand_out(i)
    finally:
        if started:
            ray.shutdown()
