"""Which attention layers a denoiser has and what they are called: architecture as data.

Adding a denoiser means adding a row to ARCHITECTURES (its class name, the pattern of its
attention modules' paths, how their top-level paths shorten, and the name of the latent
argument of its forward), never an isinstance branch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class Architecture:
    """How one denoiser class lays out its attention.

    pattern: matches an attention module's path; named groups `top` (the top-level path, a key
        of `prefixes`), and optionally `block`, `attention` and `transformer` indices.
    prefixes: top-level path -> short prefix ("down_blocks" -> "down").
    latent: the keyword under which the denoiser's forward receives the noisy latents.
    text: the pipeline's tokenizers whose sequences the text keys are, in order (SD3 puts its
        T5 tokens after its CLIP tokens; Flux's are T5's only, CLIP gives a pooled vector).
    single: top-level paths whose attention runs over the text tokens then the image tokens
        as one sequence (Flux's single-stream blocks).
    rotary: the processor rotates queries and keys by the `image_rotary_emb` it is given,
        whose positions run over the text tokens then the image tokens (Flux).
    text_first: its joint attention runs over [text; image] (Flux) rather than [image; text]
        (SD3); single-stream attention always puts the text first.
    positions: the forward keyword holding the image tokens' (_, row, column) ids, for
        denoisers that take their latents packed as a sequence (Flux: "img_ids").
    packed: latent pixels per side of one token of packed latents (Flux packs 2x2).
    linear_self: its self-attention is linear attention (Sana's): no probabilities to read.
    text_window: "all" (the text keys are the tokenized prompt) or "tail" (Sana: the first
        token and the last keys-1 tokens of a longer sequence, an instruction then the prompt).
    """

    pattern: re.Pattern
    prefixes: dict[str, str]
    latent: str
    text: tuple[str, ...] = ("tokenizer",)
    single: tuple[str, ...] = ()
    rotary: bool = False
    text_first: bool = False
    positions: str | None = None
    packed: int = 1
    linear_self: bool = False
    text_window: Literal["all", "tail"] = "all"

    def latent_grid(self, latent: torch.Tensor, kwargs: dict) -> tuple[int, int]:
        """(rows, columns) of the latent the denoiser is called on: the last two dimensions of
        a latent image, or the extent of the positions of a packed one."""
        if self.positions is None:
            return tuple(latent.shape[-2:])
        ids = kwargs[self.positions]
        ids = ids[0] if ids.ndim == 3 else ids
        return int(ids[:, 1].max()) + 1, int(ids[:, 2].max()) + 1


_UNET = re.compile(
    r"^(?P<top>[a-z_]+?)(?:\.(?P<block>\d+))?\.attentions\.(?P<attention>\d+)"
    r"\.transformer_blocks\.(?P<transformer>\d+)\.(?P<attn>attn\d)$"
)
# Transformers with attention per block: PixArt's attn1 (self) and attn2 (cross); SD3's attn
# (joint: image and text tokens in one softmax) and, in its dual blocks, attn2 (image self).
_BLOCKS = re.compile(r"^(?P<top>transformer_blocks)\.(?P<block>\d+)\.(?P<attn>attn\d?)$")
# Flux: joint-attention (double-stream) blocks, then single-stream blocks over [text; image].
_FLUX = re.compile(r"^(?P<top>transformer_blocks|single_transformer_blocks)\.(?P<block>\d+)\.(?P<attn>attn)$")

ARCHITECTURES: dict[str, Architecture] = {
    "UNet2DConditionModel": Architecture(_UNET, {"down_blocks": "down", "mid_block": "mid", "up_blocks": "up"}, "sample"),
    "PixArtTransformer2DModel": Architecture(_BLOCKS, {"transformer_blocks": "block"}, "hidden_states"),
    "SD3Transformer2DModel": Architecture(_BLOCKS, {"transformer_blocks": "block"}, "hidden_states", ("tokenizer", "tokenizer_3")),
    "FluxTransformer2DModel": Architecture(
        _FLUX, {"transformer_blocks": "block", "single_transformer_blocks": "single"}, "hidden_states", ("tokenizer_2",),
        single=("single_transformer_blocks",), rotary=True, text_first=True, positions="img_ids", packed=2,
    ),
    "SanaTransformer2DModel": Architecture(_BLOCKS, {"transformer_blocks": "block"}, "hidden_states", linear_self=True, text_window="tail"),
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
    stream: how its text keys come: "separate" (the keys of a cross- or self-attention),
        "joint" (text keys projected by the layer's add_k_proj, one softmax with the image
        keys: SD3, Flux's double-stream blocks), "single" (text then image tokens in one
        sequence: Flux's single-stream blocks) or "linear" (linear attention, Sana's
        self-attention: no probabilities).
    rotary: the layer rotates its queries and keys (Flux's RoPE).
    text_first: its joint sequence is [text; image] (Flux) rather than [image; text] (SD3).
    """

    path: str
    short: str
    kind: Literal["cross", "self"]
    stream: Literal["separate", "joint", "single", "linear"] = "separate"
    rotary: bool = False
    text_first: bool = False

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
        if not hasattr(module, "set_processor") or not hasattr(module, "to_q"):
            continue
        match = architecture.pattern.match(path)
        if match is None or match["top"] not in prefixes:
            continue
        found = match.groupdict()
        base = ".".join([prefixes[match["top"]]] + [found[g] for g in ("block", "attention") if found.get(g) is not None])
        transformer = int(found.get("transformer") or 0)
        counts[base] = max(counts.get(base, 0), transformer + 1)
        # joint and single-stream attention are read as cross-attention: their text part
        joint = getattr(module, "add_k_proj", None) is not None
        cross = getattr(module, "is_cross_attention", False)
        stream = "single" if match["top"] in architecture.single else "joint" if joint else "separate"
        if architecture.linear_self and not cross and stream == "separate":
            stream = "linear"
        kind = "cross" if stream in ("joint", "single") or cross else "self"
        parsed.append((path, base, transformer, kind, stream))
    # Present layers along the signal path: down blocks, then mid, then up (module order differs).
    order = list(prefixes.values())
    parsed.sort(key=lambda row: order.index(row[1].split(".")[0]))
    return [
        AttentionLayer(path, base if counts[base] == 1 else f"{base}.t{transformer}", kind, stream, architecture.rotary,
                       architecture.text_first)
        for path, base, transformer, kind, stream in parsed
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
    others = [layer for layer in layers if layer.kind != kind]
    selectors = [selection] if isinstance(selection, str) else list(selection)
    chosen: list[AttentionLayer] = []
    for selector in selectors:
        hits = [layer for layer in candidates if _matches(layer, selector)]
        elsewhere = [layer for layer in others if _matches(layer, selector)]
        if not hits and elsewhere and selector != "all":
            argument = "layers" if kind == "self" else "self_layers"
            raise LayerSelectionError(
                f"{selector!r} has no {kind}-attention: it names {_described(elsewhere)}; select it with {argument}=..."
            )
        if not candidates:
            what = f"; its layers are {_described(others)}" if others else ""
            raise ValueError(f"the denoiser has no {kind}-attention layers to capture{what}")
        linear = [layer for layer in hits if layer.stream == "linear"]
        if linear:
            raise LayerSelectionError(f"{selector!r} names {_described(linear)}; select cross-attention layers instead")
        if not hits:
            raise LayerSelectionError(
                f"no {kind}-attention layer matches {selector!r}; valid names are "
                f"{', '.join(sorted({l.group for l in candidates}))} or one of: {', '.join(l.short for l in candidates)}"
                " (or a full module path)"
            )
        chosen.extend(hit for hit in hits if hit not in chosen)
    return [layer for layer in candidates if layer in chosen]


def _matches(layer: AttentionLayer, selector: str) -> bool:
    return selector == "all" or selector in (layer.path, layer.short) or layer.short.startswith(selector + ".")


STREAMS = {
    "single": "single-stream attention (one softmax over its text and image tokens, whose image-query -> text-key part is read as word maps)",
    "joint": "joint attention (image and text keys in one softmax, whose text part is read as word maps)",
    "linear": "linear attention (ReLU feature maps, no softmax: there are no attention probabilities to read)",
}


def _described(layers: Sequence[AttentionLayer]) -> str:
    """e.g. "single.0, single.1: single-stream attention (...)", one clause per kind of layer."""
    groups: dict[str, list[str]] = {}
    for layer in layers:
        what = STREAMS.get(layer.stream, f"{layer.kind}-attention")
        groups.setdefault(what, []).append(layer.short)
    return "; ".join(f"{', '.join(names)}: {what}" for what, names in groups.items())
