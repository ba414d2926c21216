"""Which attention layers a denoiser has and what they are called: architecture as data.

Adding a denoiser means adding a row to ARCHITECTURES (its class name, the pattern of its
attention modules' paths, how their top-level paths shorten, and the name of the latent
argument of its forward), never an isinstance branch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

from torch import nn


@dataclass(frozen=True)
class Architecture:
    """How one denoiser class lays out its attention.

    pattern: matches an attention module's path; named groups `top` (the top-level path, a key
        of `prefixes`), and optionally `block`, `attention` and `transformer` indices.
    prefixes: top-level path -> short prefix ("down_blocks" -> "down").
    latent: the keyword under which the denoiser's forward receives the noisy latents.
    text: the pipeline's tokenizers whose sequences the text keys are, in order (SD3 puts its
        T5 tokens after its CLIP tokens).
    """

    pattern: re.Pattern
    prefixes: dict[str, str]
    latent: str
    text: tuple[str, ...] = ("tokenizer",)


_UNET = re.compile(
    r"^(?P<top>[a-z_]+?)(?:\.(?P<block>\d+))?\.attentions\.(?P<attention>\d+)"
    r"\.transformer_blocks\.(?P<transformer>\d+)\.(?P<attn>attn\d)$"
)
# Transformers with attention per block: PixArt's attn1 (self) and attn2 (cross); SD3's attn
# (joint: image and text tokens in one softmax) and, in its dual blocks, attn2 (image self).
_BLOCKS = re.compile(r"^(?P<top>transformer_blocks)\.(?P<block>\d+)\.(?P<attn>attn\d?)$")

ARCHITECTURES: dict[str, Architecture] = {
    "UNet2DConditionModel": Architecture(_UNET, {"down_blocks": "down", "mid_block": "mid", "up_blocks": "up"}, "sample"),
    "PixArtTransformer2DModel": Architecture(_BLOCKS, {"transformer_blocks": "block"}, "hidden_states"),
    "SD3Transformer2DModel": Architecture(_BLOCKS, {"transformer_blocks": "block"}, "hidden_states", ("tokenizer", "tokenizer_3")),
}


@dataclass(frozen=True)
class AttentionLayer:
    """One attention module of the denoiser.

    path: module path inside the denoiser (diffusers' processor key without ".processor").
    short: e.g. "down.1.0" (block 1 of the down path, its attention 0), "mid.0", "up.2.1";
        ".t3" is appended for transformer block 3 where an attention has several (SDXL);
        "block.7" for block 7 of a transformer denoiser.
    kind: "cross" (keys are text tokens; for joint attention, its text keys) or "self" (keys
        are image positions).
    """

    path: str
    short: str
    kind: Literal["cross", "self"]

    @property
    def group(self) -> str:
        """The block the layer sits in: "down.1", "mid", "up.2" (a transformer's "block.3")."""
        parts = self.short.split(".")
        return parts[0] if parts[0] == "mid" else ".".join(parts[:2])


class LayerSelectionError(ValueError):
    """A layer selector that matches no attention layer of the denoiser."""


def denoiser_of(pipe) -> nn.Module:
    """The pipeline's denoiser, if its architecture is known.

    Raises:
        ValueError: naming the pipeline class and the supported denoisers.
    """
    found = [module for module in (getattr(pipe, name, None) for name in ("unet", "transformer", "prior")) if module is not None]
    for module in found:
        if type(module).__name__ in ARCHITECTURES:
            return module
    which = f"its denoiser is a {type(found[0]).__name__}, which has no row yet" if found else "it has no denoiser"
    raise ValueError(
        f"{type(pipe).__name__}: {which}; the workbench reads attention of {', '.join(ARCHITECTURES)} "
        "(add a row to workbench.capture.architectures.ARCHITECTURES for another)"
    )


def attention_layers(denoiser: nn.Module) -> list[AttentionLayer]:
    """Every attention layer of `denoiser`, along the signal path."""
    architecture = ARCHITECTURES[type(denoiser).__name__]
    prefixes = architecture.prefixes
    counts: dict[str, int] = {}
    parsed = []
    for path, module in denoiser.named_modules():
        if not hasattr(module, "set_processor") or not hasattr(module, "is_cross_attention"):
            continue
        match = architecture.pattern.match(path)
        if match is None or match["top"] not in prefixes:
            continue
        found = match.groupdict()
        base = ".".join([prefixes[match["top"]]] + [found[g] for g in ("block", "attention") if found.get(g) is not None])
        transformer = int(found.get("transformer") or 0)
        counts[base] = max(counts.get(base, 0), transformer + 1)
        # joint attention (text keys through add_k_proj) is read as cross-attention: its text part
        kind = "cross" if module.is_cross_attention or getattr(module, "add_k_proj", None) is not None else "self"
        parsed.append((path, base, transformer, kind))
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
