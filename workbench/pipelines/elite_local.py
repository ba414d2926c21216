"""ELITE's local mapping: patch features of the (masked) image injected into cross-attention.

Local tokens, per patch p: the mean over layers i of mapping_i(CLS_i) + mapping_patch_i(patch_p,i)
(ELITE's `MapperLocal` layout). In every cross-attention layer, for the conditional rows:

    out = A V + lambda (A_local * a_w / max a_w) V_local

with A the layer's own attention, a_w its attention on the placeholder (w0) token, A_local the
attention of the same queries on the local tokens through fine-tuned key/value projections
(`local_mapper.pt`: `<module path, dots as underscores>_to_k.weight` / `_to_v.weight`). The
second term is added as a diffusers attention processor that wraps the layer's own one; it
reads the projections' weights directly, so forward hooks (and traces) see only the
pipeline's own attention calls.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..capture.probabilities import attention_probabilities, split_heads
from .elite import mapping_mlp, read_mapper_checkpoint


class LocalMapping(nn.Module):
    """Patch features of n_layers encoder layers -> local tokens (batch, patches, output_dim)."""

    def __init__(self, input_dim: int, output_dim: int, n_layers: int = 5, hidden: int = 1024):
        super().__init__()
        self.n_layers = n_layers
        for i in range(n_layers):
            self.add_module(f"mapping_{i}", mapping_mlp(input_dim, hidden, output_dim))
            self.add_module(f"mapping_patch_{i}", mapping_mlp(input_dim, hidden, output_dim))

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(features) != self.n_layers:
            raise ValueError(f"expected features of {self.n_layers} layers, got {len(features)}")
        per_layer = [getattr(self, f"mapping_{i}")(f[:, :1]) + getattr(self, f"mapping_patch_{i}")(f[:, 1:]) for i, f in enumerate(features)]
        return torch.stack(per_layer).mean(dim=0)


def patch_mask(masks: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(batch, y, x) object masks -> (batch, patches, 1): 1 where a patch holds any object pixel,
    patches in the vision model's row-major order."""
    pooled = F.max_pool2d(masks[:, None].float(), patch_size)
    return pooled.flatten(1)[..., None]


def local_tokens(mapper: LocalMapping, features: Sequence[torch.Tensor], masks: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Local tokens (batch, patches, text width) of the object's patches, as ELITE masks the
    image with the object's segmentation: other patches' features are zeroed before the mapping.

    Args:
        features: per layer (batch, 1 + patches, width), CLS first (`WordEncoder.features`).
        masks: (batch, y, x) object masks of the encoded images.
        patch_size: the image encoder's patch side in pixels.
    """
    keep = patch_mask(masks, patch_size)
    return mapper([torch.cat([f[:, :1], f[:, 1:] * keep], dim=1) for f in features])


def load_local_mapper(path: str | Path, unet: nn.Module, input_dim: int, output_dim: int, hidden: int = 1024) -> tuple[LocalMapping, dict[str, tuple[nn.Linear, nn.Linear]]]:
    """Read an ELITE `local_mapper.pt`: the mapping network and, per cross-attention layer path,
    its local key/value projections.

    Raises:
        ELITECheckpointError: naming missing and unexpected keys, or shapes that do not fit.
    """
    build = lambda n: LocalMapping(input_dim, output_dim, n_layers=n, hidden=hidden)  # noqa: E731
    mapper, state, layers = read_mapper_checkpoint(path, unet, build, "local-mapper")
    projections = {}
    for prefix, module_path in layers.items():
        pair = []
        for kind in ("to_k", "to_v"):
            weight = state[f"{prefix}_{kind}.weight"]
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
            linear.weight.data.copy_(weight)
            pair.append(linear)
        projections[module_path] = (pair[0], pair[1])
    return mapper, projections


@dataclass
class LocalContext:
    """What the local processors share during one generation."""

    tokens: torch.Tensor  # (batch, patches, text width), for the conditional rows
    placeholder_id: int  # the token whose attention gates the local term (w0's slot)
    strength: float  # lambda
    positions: torch.Tensor | None = None  # (batch,) slot of the placeholder in each prompt


class LocalMappingProcessor:
    """Wraps a layer's processor and adds ELITE's local term for the conditional rows."""

    def __init__(self, original, to_k_local: nn.Linear, to_v_local: nn.Linear, context: LocalContext):
        self.original, self.to_k_local, self.to_v_local, self.context = original, to_k_local, to_v_local, context

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        out = self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        ctx = self.context
        if encoder_hidden_states is None or ctx.positions is None or hidden_states.ndim != 3:
            return out
        n = ctx.tokens.shape[0]
        rows = slice(hidden_states.shape[0] - n, None)  # [unconditional, conditional]: the last n
        hidden, context = hidden_states[rows], encoder_hidden_states[rows]
        # F.linear on the weights, not the modules: hooks on to_q/to_k must see only the layer's own call
        query = F.linear(hidden, attn.to_q.weight, attn.to_q.bias)
        key = F.linear(context, attn.to_k.weight, attn.to_k.bias)
        probabilities = attention_probabilities(attn, query, key)  # (n, heads, queries, tokens)
        gate = probabilities[torch.arange(n), :, :, ctx.positions.to(probabilities.device)]  # (n, heads, queries)
        gate = gate / gate.max()  # ELITE normalises by the largest value
        tokens = ctx.tokens.to(hidden.dtype).to(hidden.device)
        local_probabilities = attention_probabilities(attn, query, self.to_k_local(tokens))
        local_probabilities = local_probabilities * gate[..., None] * ctx.strength
        local = torch.matmul(local_probabilities, split_heads(attn, self.to_v_local(tokens)).float())
        local = local.transpose(1, 2).reshape(n, hidden.shape[1], -1).to(out.dtype)
        delta = F.linear(local, attn.to_out[0].weight) / attn.rescale_output_factor
        out = out.clone()
        out[rows] = out[rows] + delta
        return out


@contextmanager
def local_mapping(pipe, projections: dict[str, tuple[nn.Linear, nn.Linear]], tokens: torch.Tensor, placeholder: str = "S*", strength: float = 1.0) -> Iterator[LocalContext]:
    """While open, every cross-attention layer adds ELITE's local term for the prompts.

    Args:
        pipe: the pipeline (its UNet's cross-attention layers must match `projections`).
        projections: from load_local_mapper (or trained ones), per layer path.
        tokens: (batch, patches, text width) local tokens, one row per prompt.
        placeholder: the token whose attention gates the local term; prompts must contain it.
        strength: lambda.

    Raises:
        ValueError: a layer without projections, or prompts without the placeholder.
    """
    unet = pipe.unet
    placeholder_id = pipe.tokenizer.convert_tokens_to_ids(placeholder)
    if placeholder_id is None or placeholder_id == pipe.tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no token {placeholder!r}; add the learned word first (injected_words or insert_embeddings)")
    context = LocalContext(tokens, placeholder_id, strength)
    originals = unet.attn_processors
    processors = {}
    for key, original in originals.items():
        path = key.removesuffix(".processor")
        module = unet.get_submodule(path)
        if getattr(module, "is_cross_attention", False):
            if path not in projections:
                raise ValueError(f"no local projections for the cross-attention layer {path}")
            processors[key] = LocalMappingProcessor(original, *projections[path], context)
        else:
            processors[key] = original

    def find_placeholder(module, inputs, output) -> None:
        ids = inputs[0]
        hits = ids == placeholder_id
        if hits.any():
            if not hits.any(dim=1).all():
                raise ValueError(f"every prompt must contain the placeholder {placeholder!r} (e.g. 'a photo of {placeholder}')")
            context.positions = hits.float().argmax(dim=1)

    handle = pipe.text_encoder.get_input_embeddings().register_forward_hook(find_placeholder)
    unet.set_attn_processor(processors)
    try:
        yield context
    finally:
        handle.remove()
        unet.set_attn_processor(originals)
