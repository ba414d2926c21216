"""LoRA weights into a pipeline, checked: diffusers' `load_lora_weights` does the loading (every
format it reads: diffusers/peft, kohya), after every weight in diffusers' own layout has been
checked against the module it names, so that a LoRA made for another model is refused naming its
file and first misfitting key instead of a page of size mismatches or a silent no-op."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

# "<component>.<module path>.lora_A.weight" (peft) or ".lora.down.weight" (older diffusers)
DIFFUSERS_KEY = re.compile(r"^(?P<component>[a-z_0-9]+)\.(?P<module>.+?)\.(?P<part>lora_A|lora_B|lora\.down|lora\.up)\.weight$")


class LoraFileError(ValueError):
    """A LoRA file that does not fit the pipeline (names the file and the key)."""


def _module(pipe, component: str, path: str):
    root = getattr(pipe, component, None)
    if not isinstance(root, torch.nn.Module):
        return None
    try:
        return root.get_submodule(path)
    except AttributeError:
        return None


def _first_misfit(pipe, weights: dict[str, torch.Tensor]) -> str | None:
    """Why the first weight in diffusers' layout does not fit its module (None: all fit)."""
    for key, value in weights.items():
        match = DIFFUSERS_KEY.match(key)
        if match is None:
            continue
        component, path, part = match["component"], match["module"], match["part"]
        module = _module(pipe, component, path)
        if module is None:
            return f"{key}: {type(pipe).__name__} has no module {component}.{path}"
        base = getattr(module, "base_layer", module)  # a module that holds a LoRA already
        weight = getattr(base, "weight", None)
        if weight is None or weight.ndim < 2:
            return f"{key}: {component}.{path} is a {type(base).__name__}, not a layer a LoRA adapts"
        out_features, in_features = weight.shape[:2]
        down = part in ("lora_A", "lora.down")
        expected, found, side = (in_features, value.shape[1], "input") if down else (out_features, value.shape[0], "output")
        if found != expected:
            return f"{key}: {component}.{path} has {expected} {side} features, the LoRA {found}"
    return None


def _adapted(pipe) -> set[str]:
    """Names of the modules that hold a LoRA, in every component."""
    found = set()
    for name, component in getattr(pipe, "components", {}).items():
        if isinstance(component, torch.nn.Module):
            found |= {f"{name}.{path}" for path, module in component.named_modules() if hasattr(module, "lora_A")}
    return found


def load_lora(pipe, path: str | Path, adapter_name: str | None = None) -> list[str]:
    """Load a LoRA file (safetensors: diffusers/peft or kohya layout) into the pipeline.

    Returns:
        The modules the LoRA adapts ("unet.down_blocks.0...to_k").

    Raises:
        LoraFileError: a missing or unreadable file, a weight that does not fit the module it
            names (the file, the key, the sizes), a file diffusers cannot load (its reason, one
            line), or one that adapts nothing in this pipeline.
    """
    path = Path(path)
    file = path / "pytorch_lora_weights.safetensors" if path.is_dir() else path
    if not file.is_file():
        raise LoraFileError(f"LoRA file {file} does not exist")
    try:
        weights = load_file(str(file))
    except (SafetensorError, OSError) as error:
        raise LoraFileError(f"{file}: not a safetensors LoRA file ({error})") from None
    misfit = _first_misfit(pipe, weights)
    if misfit:
        raise LoraFileError(f"{file}: the LoRA does not fit {type(pipe).__name__}: {misfit}")
    before = _adapted(pipe)
    try:
        pipe.load_lora_weights(str(file), adapter_name=adapter_name)
    except Exception as error:  # diffusers and peft raise many kinds; one line with the file is what the user needs
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise LoraFileError(f"{file}: diffusers could not load this LoRA into {type(pipe).__name__}: {first}") from None
    adapted = sorted(_adapted(pipe) - before)
    if not adapted:
        raise LoraFileError(f"{file}: none of its {len(weights)} weights adapt a module of {type(pipe).__name__} "
                            f"(first key: {next(iter(weights), 'none')})")
    return adapted
