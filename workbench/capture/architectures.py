"""Which attention layers a denoiser has and what they are called: architecture as data.

Adding a denoiser means adding a row to ARCHITECTURES (the class name and how its top-level
module paths shorten), never an isinstance branch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

from torch import nn

# Denoiser class name -> {top-level module path: short prefix}.
ARCHITECTURES: dict[str, dict[str, str]] = {
    "UNet2DConditionModel": {"down_blocks": "down", "mid_block": "mid", "up_blocks": "up"},
}

_PATH = re.compile(
    r"^(?P<top>[a-z_]+?)(?:\.(?P<block>\d+))?\.attentions\.(?P<attention>\d+)"
    r"\.transformer_blocks\.(?P<transformer>\d+)\.(?P<attn>attn\d)$"
)


@dataclass(frozen=True)
class AttentionLayer:
    """One attention module of the denoiser.

    path: module path inside the denoiser (diffusers' processor key without ".processor").
    short: e.g. "down.1.0" (block 1 of the down path, its attention 0), "mid.0", "up.2.1";
        ".t3" is appended for transformer block 3 where an attention has several (SDXL).
    kind: "cross" (keys are text tokens) or "self" (keys are image positions).
    """

    path: str
    short: str
    kind: Literal["cross", "self"]

    @property
    def group(self) -> str:
        """The block the layer sits in: "down.1", "mid", "up.2"."""
        parts = self.short.split(".")
        return parts[0] if parts[0] == "mid" else ".".join(parts[:2])


class LayerSelectionError(ValueError):
    """A layer selector that matches no attention layer of the denoiser."""


def denoiser_of(pipe) -> nn.Module:
    """The pipeline's denoiser, if its architecture is known.

    Raises:
        ValueError: naming the pipeline class and the supported denoisers.
    """
    for name in ("unet", "transformer", "prior"):
        module = getattr(pipe, name, None)
        if module is not None and type(module).__name__ in ARCHITECTURES:
            return module
    raise ValueError(
        f"{type(pipe).__name__} has no denoiser with cross-attention that the workbench knows; "
        f"supported denoisers: {', '.join(ARCHITECTURES)} (add a row to "
        "workbench.capture.architectures.ARCHITECTURES for another)"
    )


def attention_layers(denoiser: nn.Module) -> list[AttentionLayer]:
    """Every attention layer of `denoiser`, in module order."""
    prefixes = ARCHITECTURES[type(denoiser).__name__]
    counts: dict[str, int] = {}
    parsed = []
    for path, module in denoiser.named_modules():
        if not hasattr(module, "set_processor") or not hasattr(module, "is_cross_attention"):
            continue
        match = _PATH.match(path)
        if match is None or match["top"] not in prefixes:
            continue
        block = prefixes[match["top"]] + (f".{match['block']}" if match["block"] is not None else "")
        base = f"{block}.{match['attention']}"
        counts[base] = max(counts.get(base, 0), int(match["transformer"]) + 1)
        kind = "cross" if module.is_cross_attention else "self"
        parsed.append((path, base, int(match["transformer"]), kind))
    # Present layers along the signal path: down blocks, then mid, then up (module order differs).
    order = list(prefixes.values())
    parsed.sort(key=lambda row: order.index(row[1].split(".")[0]))
    return [
        AttentionLayer(path, base if counts[base] == 1 else f"{base}.t{transformer}", kind)
        for path, base, transformer, kind in parsed
    ]


def select_layers(
    layers: Sequence[AttentionLayer], selection: str | Sequence[str] | None, kind: str
) -> list[AttentionLayer]:
    """The layers of `kind` matched by `selection`.

    A selector is "all", a module path, a short name, or a short-name prefix ("down",
    "down.1", "up.2.1"). None selects nothing.

    Raises:
        LayerSelectionError: for a selector that matches nothing, listing the valid names.
        ValueError: if the denoiser has no layer of `kind` at all.
    """
    if selection is None:
        return []
    candidates = [layer for layer in layers if layer.kind == kind]
    if not candidates:
        raise ValueError(f"the denoiser has no {kind}-attention layers to capture")
    selectors = [selection] if isinstance(selection, str) else list(selection)
    chosen: list[AttentionLayer] = []
    for selector in selectors:
        hits = [
            layer
            for layer in candidates
            if selector == "all" or selector in (layer.path, layer.short) or layer.short.startswith(selector + ".")
        ]
        if not hits:
            raise LayerSelectionError(
                f"no {kind}-attention layer matches {selector!r}; valid names are "
                f"{', '.join(sorted({l.group for l in candidates}))} or one of: {', '.join(l.short for l in candidates)}"
                " (or a full module path)"
            )
        chosen.extend(hit for hit in hits if hit not in chosen)
    return [layer for layer in candidates if layer in chosen]
