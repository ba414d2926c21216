"""How long does `workbench demo` take? Writes benchmarks/results/demo_time.json.

Runs the console script in a fresh process into an empty folder (so nothing is resumed) and
times it end to end, imports and JIT compilation included, and weighs the dashboard it writes.
Goals: 90 seconds on 2 cores, a dashboard under 3 MB (one offline file, plotly.js included).

    python benchmarks/demo_time.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import workbench
from workbench.files import atomic_path

RESULT = Path(__file__).parent / "results" / "demo_time.json"


def main() -> None:
    out = Path(tempfile.mkdtemp(prefix="demo-time-"))
    command = [str(Path(sys.executable).with_name("workbench")), "demo", "--out", str(out)]
    tic = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - tic
    if done.returncode != 0:
        raise SystemExit(f"workbench demo failed:\n{done.stderr[-2000:]}")
    records = {run.name: json.loads((run / "run.json").read_text()) for run in sorted((out / "runs").iterdir())}
    parts = {name: {part: p["seconds"] for part, p in record["parts"].items()} for name, record in records.items()}
    versions = next(iter(records.values()))["versions"] if records else {"workbench": workbench.__version__}
    result = {
        "seconds": round(seconds, 1),
        "goal_seconds": 90,
        "parts_seconds": parts,
        "dashboard_bytes": (out / "dashboard.html").stat().st_size,
        "goal_dashboard_bytes": 3_000_000,
        "probe_dashboard_bytes": {run.name: (run / "dashboard.html").stat().st_size for run in sorted((out / "runs").iterdir())
                                  if (run / "dashboard.html").exists()},
        "cpu_count": os.cpu_count(),
        "versions": versions,
    }
    shutil.rmtree(out, ignore_errors=True)
    with atomic_path(RESULT) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
