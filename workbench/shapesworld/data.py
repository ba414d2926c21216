"""Where ShapesWorld's trained models live: the data folder, and how to remake each of them."""

from __future__ import annotations

import os
from pathlib import Path

from workbench.pipelines.loading import PipelineLoadError

# which command makes each embedded folder (named in the error when one is missing)
TRAINING_COMMANDS = {
    "shapes": "workbench world train --out checkpoints/shapes --export-to data/shapes",
    "shapes-transformer": "workbench world train --denoiser transformer --out checkpoints/shapes-transformer --export-to data/shapes-transformer",
    "shapes-classifier": "workbench world train-classifier --out data/shapes-classifier",
    "shapes-encoder": "workbench world train-encoder --out checkpoints/shapes-encoder --export-to data/shapes-encoder",
}


def shipped(packaged: str, checkout: str) -> Path:
    """A folder ShapesWorld ships: inside the installed package (a wheel), else in the checkout
    this package is installed from (an editable install)."""
    inside = Path(__file__).resolve().parent / packaged
    return inside if inside.is_dir() else Path(__file__).resolve().parents[2] / checkout


def data_dir() -> Path:
    """The folder holding the embedded models: $WORKBENCH_DATA, else the one shipped (`data/`)."""
    override = os.environ.get("WORKBENCH_DATA")
    return Path(override) if override else shipped("trained", "data")


def embedded_path(name: str) -> Path:
    """The folder of an embedded model or file under the data directory.

    Raises:
        PipelineLoadError: if it is missing (names the folder and how to make it).
    """
    path = data_dir() / name
    if not path.exists():
        command = TRAINING_COMMANDS.get(name, "workbench world train")
        raise PipelineLoadError(
            f"the embedded model folder {path} is missing; reinstall concept-workbench, point WORKBENCH_DATA at a "
            f"folder holding it, or retrain it with `{command}`"
        )
    return path
