"""A run directory's record, run.json: written atomically, read back checked."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from ..files import atomic_path

RUN_FORMAT = 1


class RunDirectoryError(ValueError):
    """The output folder holds something this run must not mix with."""


def versions() -> dict[str, str]:
    import diffusers
    import numpy
    import torch
    import transformers

    from ..version import __version__

    return {"workbench": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "diffusers": diffusers.__version__, "transformers": transformers.__version__, "numpy": numpy.__version__}


def write_record(run_dir: Path, record: dict) -> None:
    with atomic_path(run_dir / "run.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str))


def read_record(run_dir: str | Path) -> dict:
    """run.json of a run directory (checked: it exists and is of this format)."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected a run directory written by `workbench run`")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunDirectoryError(f"{path} is damaged ({error}); it is not a run record this workbench can read: "
                                "delete the run folder or choose a new --out") from None
    if not isinstance(record, dict) or record.get("format") != RUN_FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise RunDirectoryError(f"{path} has run format {found!r}; this workbench reads format {RUN_FORMAT}")
    missing = [key for key in ("versions", "fingerprint", "settings", "parts") if key not in record]
    if missing:
        raise RunDirectoryError(f"{path} lacks {', '.join(missing)}; it is damaged: delete the run folder or choose a new --out")
    return record
