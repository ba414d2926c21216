"""One way to load a pipeline: an embedded world's model by name, or a diffusers folder by path."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..worlds import embedded_worlds, pipeline_class, world_with_pipeline

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


class PipelineLoadError(ValueError):
    """A name or folder that does not hold a loadable pipeline."""


def check_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device, refused (PipelineLoadError) when this torch cannot use it:
    a CUDA device asked of a CPU build or of a machine without that GPU, or MPS where there is none."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise PipelineLoadError(f"device {device!r} is not a device torch knows ({error}); expected \"cpu\", \"cuda\", \"cuda:1\", \"mps\"") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PipelineLoadError(f"device {str(device)!r} asked, but this torch ({torch.__version__}) sees no CUDA GPU; "
                                    "install a CUDA build of torch on a GPU machine, or use device \"cpu\"")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PipelineLoadError(f"device {str(device)!r} asked, but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise PipelineLoadError(f"device {str(device)!r} asked, but MPS is not available here; use device \"cpu\"")
    return device


def resolve_pipeline_path(name_or_path: str | os.PathLike) -> Path:
    """Map an embedded name or a folder path to a folder with a model_index.json."""
    text = str(name_or_path)
    world = world_with_pipeline(text)
    if world is not None:
        path = world.pipeline_folder(text)
    else:
        path = Path(text).expanduser()
        if not path.is_dir():
            names = [name for w in embedded_worlds() for name in w.pipelines]
            raise PipelineLoadError(
                f"load_pipeline: {text!r} is neither an embedded model ({', '.join(names) or 'none installed'}) "
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
        name_or_path: an embedded model's name ("shapes": ShapesWorld's) or the folder of any diffusers
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
    device = check_device(device)
    path = resolve_pipeline_path(name_or_path)
    try:
        index = json.loads((path / "model_index.json").read_text())
        class_name = index["_class_name"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise PipelineLoadError(
            f"load_pipeline: {path / 'model_index.json'} is not a valid pipeline index "
            "(expected JSON with a '_class_name' entry)"
        ) from error
    from diffusers import DiffusionPipeline  # imported here: it takes seconds

    loader = pipeline_class(class_name) or DiffusionPipeline  # a world's own class, else diffusers resolves it
    try:
        pipe = loader.from_pretrained(path, dtype=dtype, local_files_only=True)
    except (OSError, ValueError, AttributeError, ImportError, KeyError, RuntimeError) as error:
        raise PipelineLoadError(
            f"load_pipeline: could not load the {class_name} pipeline in {path}: {error}"
        ) from error
    return pipe.to(device)
