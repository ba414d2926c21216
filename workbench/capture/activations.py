"""Record outputs of named modules (text-encoder layers, UNet blocks) during a trace.

A module is named by its path from the pipeline: "<component>.<path inside it>", e.g.
"text_encoder.encoder.layers.1" or "unet.mid_block". Outputs are pooled as they
arrive so that storage stays small: "mean" / "max" over positions (pixels or tokens), or
"none" to keep the whole tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

Pool = Literal["mean", "max", "none"]


def resolve_module(pipe, name: str) -> nn.Module:
    """The module at `name` ("component.path.inside").

    Raises:
        ValueError: naming the part that does not exist and the children found there.
    """
    component, _, rest = name.partition(".")
    module = getattr(pipe, component, None)
    if not isinstance(module, nn.Module):
        components = [k for k, v in getattr(pipe, "components", {}).items() if isinstance(v, nn.Module)]
        raise ValueError(f"module {name!r}: the pipeline has no component {component!r}; its components are: {', '.join(components)}")
    walked = component
    for part in rest.split(".") if rest else []:
        children = dict(module.named_children())
        if part not in children:
            raise ValueError(f"module {name!r}: {walked} has no child {part!r}; its children are: {', '.join(children)}")
        module, walked = children[part], f"{walked}.{part}"
    return module


def first_tensor(output) -> torch.Tensor:
    """The main tensor of a module output (tensor, tuple, or diffusers/transformers output)."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "sample") and isinstance(output.sample, torch.Tensor):
        return output.sample
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"cannot find a tensor in a module output of type {type(output).__name__}")


# diffusers' joint-attention blocks return (text states, image states); the text half is None
# after SD3's last block
IMAGE_SECOND = ("JointTransformerBlock", "FluxTransformerBlock", "FluxSingleTransformerBlock")


def module_tensor(module: nn.Module, output) -> torch.Tensor:
    """What an analysis reads of a module's output: its main tensor, and for a joint-attention
    block (SD3, Flux) the image states (batch, image tokens, width) rather than the text's."""
    if type(module).__name__ in IMAGE_SECOND and isinstance(output, tuple) and len(output) == 2:
        return output[1]
    return first_tensor(output)


def position_dims(tensor: torch.Tensor) -> tuple[int, ...]:
    """The position dimensions: pixels of (batch, channels, y, x), tokens of (batch, tokens, features)."""
    return (2, 3) if tensor.ndim == 4 else (1,) if tensor.ndim == 3 else ()


def pool_tensor(tensor: torch.Tensor, pool: Pool) -> torch.Tensor:
    """Pool (batch, channels, y, x) over pixels or (batch, tokens, features) over tokens."""
    if pool == "none":
        return tensor
    dims = position_dims(tensor)
    if not dims:
        return tensor
    return tensor.mean(dim=dims) if pool == "mean" else tensor.amax(dim=dims)


@dataclass
class Activations:
    """Recorded activations: per module name a float32 tensor (call, prompt, ...features).

    `call` counts the module's calls inside the trace: denoising steps for UNet modules, one
    call for the text encoder.
    """

    values: dict[str, torch.Tensor]
    pool: str

    @property
    def names(self) -> list[str]:
        return list(self.values)

    def get(self, name: str, call: int | None = None) -> torch.Tensor:
        """(prompt, ...) at one call, or the mean over calls when call is None."""
        if name not in self.values:
            raise KeyError(f"no activations recorded for {name!r}; recorded: {', '.join(self.values)}")
        tensor = self.values[name]
        return tensor.mean(0) if call is None else tensor[call]

    def to_frame(self) -> pd.DataFrame:
        """Long form of pooled activations: module, call, prompt, feature, value."""
        frames = []
        for name, tensor in self.values.items():
            flat = tensor.reshape(tensor.shape[0], tensor.shape[1], -1)
            index = pd.MultiIndex.from_product([range(s) for s in flat.shape], names=["call", "prompt", "feature"])
            frames.append(pd.DataFrame({"module": name, "value": flat.numpy().ravel()}, index=index).reset_index())
        return pd.concat(frames, ignore_index=True)


@dataclass
class ActivationRecorder:
    """Forward hooks that pool and keep module outputs for the rows asked for."""

    pool: Pool
    rows: Callable[[str, int], slice | None]
    records: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    def hook(self, name: str):
        def keep(module, inputs, output) -> None:
            tensor = module_tensor(module, output)
            rows = self.rows(name, tensor.shape[0])
            if rows is not None:
                pooled = pool_tensor(tensor[rows].detach().float(), self.pool)
                self.records.setdefault(name, []).append(pooled.cpu())

        return keep

    def result(self) -> Activations:
        return Activations({name: torch.stack(entries) for name, entries in self.records.items()}, self.pool)


def register(pipe, names: Sequence[str], recorder: ActivationRecorder) -> list:
    """Attach the recorder to each named module; returns the hook handles."""
    return [resolve_module(pipe, name).register_forward_hook(recorder.hook(name)) for name in names]
