"""Reading a ShapesWorld model folder (config.json + model.safetensors) with errors that name it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, TypeVar

from torch import nn

from workbench.pipelines.tensor_files import read_tensor_file

Model = TypeVar("Model", bound=nn.Module)


def load_saved(folder: str | Path, build: Callable[[dict], Model], what: str) -> Model:
    """The model `build(config)` with the folder's weights, in eval mode.

    Raises:
        FileNotFoundError: a missing config.json or model.safetensors (named).
        ValueError: a damaged config or weights file, or weights that do not fit the config.
    """
    folder = Path(folder)
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing; expected a folder written by {what}.save_pretrained")
    try:
        model = build(json.loads((folder / "config.json").read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{folder / 'config.json'} is not a {what} config ({type(error).__name__}: {error})") from None
    state = read_tensor_file(folder / "model.safetensors", ValueError, f"the weights of a {what}")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{folder / 'model.safetensors'} does not fit its config: {str(error).splitlines()[0]}") from None
    return model.eval()
