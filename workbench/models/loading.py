"""One way to load a pipeline: an embedded model by name, or a diffusers folder by path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from diffusers import DiffusionPipeline

from .shapes_pipeline import ShapesPipeline

# Embedded models: name -> folder under the data directory.
EMBEDDED_PIPELINES: dict[str, str] = {"shapes": "shapes"}
# Pipeline classes of this project; any other `_class_name` is resolved by diffusers.
LOCAL_PIPELINE_CLASSES: dict[str, type[DiffusionPipeline]] = {"ShapesPipeline": ShapesPipeline}


class PipelineLoadError(ValueError):
    """A name or folder that does not hold a loadable pipeline."""


# which command makes each embedded folder (named in the error when one is missing)
TRAINING_COMMANDS = {
    "shapes": "workbench world train --out checkpoints/shapes --export-to data/shapes",
    "shapes-classifier": "workbench world train-classifier --out data/shapes-classifier",
    "shapes-encoder": "workbench world train-encoder --out checkpoints/shapes-encoder --export-to data/shapes-encoder",
}


def data_dir() -> Path:
    """The folder holding the embedded models: $WORKBENCH_DATA, else the checkout's `data/`."""
    override = os.environ.get("WORKBENCH_DATA")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "data"


def embedded_path(name: str) -> Path:
    """The folder of an embedded model or file under the data directory.

    Raises:
        PipelineLoadError: if it is missing (names the folder and how to make it).
    """
    path = data_dir() / name
    if not path.exists():
        command = TRAINING_COMMANDS.get(name, "workbench world train")
        raise PipelineLoadError(
            f"the embedded model folder {path} is missing; install the package from its checkout "
            f"(pip install -e .), point WORKBENCH_DATA at a folder holding it, or retrain it with `{command}`"
        )
    return path


def resolve_pipeline_path(name_or_path: str | os.PathLike) -> Path:
    """Map an embedded name or a folder path to a folder with a model_index.json."""
    text = str(name_or_path)
    if text in EMBEDDED_PIPELINES:
        path = embedded_path(EMBEDDED_PIPELINES[text])
    else:
        path = Path(text).expanduser()
        if not path.is_dir():
            raise PipelineLoadError(
                f"load_pipeline: {text!r} is neither an embedded model ({', '.join(EMBEDDED_PIPELINES)}) "
                "nor an existing folder; expected a name or the path of a diffusers pipeline folder"
            )
    if not (path / "model_index.json").is_file():
        raise PipelineLoadError(
            f"load_pipeline: {path} is not a diffusers pipeline folder: it has no model_index.json "
            "(expected a folder written by DiffusionPipeline.save_pretrained)"
        )
    return path


def load_pipeline(
    name_or_path: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> DiffusionPipeline:
    """Load a text-to-image pipeline offline.

    Args:
        name_or_path: "shapes" (the embedded ShapesWorld model) or the folder of any diffusers
            pipeline saved with `save_pretrained` (e.g. a local Stable Diffusion copy).
        device: where the pipeline runs ("cpu", "cuda", ...).
        dtype: weight dtype (float32, float16 or bfloat16).

    Returns:
        The pipeline, on `device`, with progress bars shown.

    Raises:
        PipelineLoadError: for an unknown name, a folder that is not a pipeline, or a folder
            whose components cannot be loaded (the cause is chained).

    Example:
        >>> pipe = load_pipeline("shapes")
        >>> pipe = load_pipeline("/models/stable-diffusion-v1-5", device="cuda", dtype=torch.float16)
    """
    path = resolve_pipeline_path(name_or_path)
    try:
        index = json.loads((path / "model_index.json").read_text())
        class_name = index["_class_name"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise PipelineLoadError(
            f"load_pipeline: {path / 'model_index.json'} is not a valid pipeline index "
            "(expected JSON with a '_class_name' entry)"
        ) from error
    pipeline_class = LOCAL_PIPELINE_CLASSES.get(class_name, DiffusionPipeline)
    try:
        pipe = pipeline_class.from_pretrained(path, dtype=dtype, local_files_only=True)
    except (OSError, ValueError, AttributeError, ImportError, KeyError, RuntimeError) as error:
        raise PipelineLoadError(
            f"load_pipeline: could not load the {class_name} pipeline in {path}: {error}"
        ) from error
    return pipe.to(device)
