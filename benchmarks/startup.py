"""How fast does the workbench start? Writes benchmarks/results/startup.json.

Each figure is the median of 5 fresh processes (the interpreter's own start included, as a
user feels it): `import workbench`, `import workbench.metrics`, and `workbench --help`. Also
records what an empty interpreter takes, and which heavy libraries each import loaded.
Goals: import workbench <= 2 s, workbench --help <= 1.5 s, metrics loads no torch or diffusers.

    python benchmarks/startup.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import workbench
from workbench.files import atomic_path

RESULT = Path(__file__).parent / "results" / "startup.json"
REPEATS = 5
HEAVY = ("torch", "diffusers", "transformers", "sklearn", "scipy", "umap", "plotly")


def timed(command: list[str]) -> float:
    tic = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - tic


def median_seconds(command: list[str]) -> float:
    return round(statistics.median(timed(command) for _ in range(REPEATS)), 3)


def loaded_by(module: str) -> list[str]:
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()


def main() -> None:
    python = [sys.executable, "-c"]
    cli = [str(Path(sys.executable).with_name("workbench")), "--help"]
    result = {
        "import_workbench_s": median_seconds(python + ["import workbench"]),
        "import_metrics_s": median_seconds(python + ["import workbench.metrics"]),
        "cli_help_s": median_seconds(cli),
        "empty_interpreter_s": median_seconds(python + ["pass"]),
        "goals_s": {"import_workbench_s": 2.0, "cli_help_s": 1.5},
        "heavy_modules_loaded": {m: loaded_by(m) for m in ("workbench", "workbench.metrics", "workbench.cli")},
        "repeats": REPEATS,
        "workbench": workbench.__version__,
    }
    with atomic_path(RESULT) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
