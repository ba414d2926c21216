"""The capture processor: wraps a layer's own attention processor and computes its attention
probabilities on the side.

The wrapped processor runs untouched, so the pipeline's output is bit-identical. Its query and
key projections are read by forward hooks on `to_q` / `to_k` while it runs (no projection is
computed twice); the probabilities softmax(q k^T * scale) are then formed in float32 for the
rows asked for only.
"""

from __future__ import annotations

import functools
import math
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch

from torch import nn

from .probabilities import attention_probabilities, joint_text_probabilities, single_stream_text_probabilities
from .architectures import AttentionLayer


def spatial_shape(latent_hw: tuple[int, int], n_queries: int) -> tuple[int, int]:
    """(y, x) of a layer whose n_queries positions tile a latent of latent_hw, halving per level.

    Raises:
        ValueError: if n_queries is no downsampling of the latent.
    """
    height, width = latent_hw
    factor = 1
    while factor <= max(height, width):
        h, w = math.ceil(height / factor), math.ceil(width / factor)
        if h * w == n_queries:
            return h, w
        factor *= 2
    raise ValueError(f"{n_queries} attention queries do not tile a {height}x{width} latent at any power-of-two scale")


class CaptureProcessor:
    """Attention processor that defers to `original` and reports probabilities to `sink`.

    `sink(layer, attn, probabilities, n_queries)` receives float32 (rows, heads, queries, keys).
    `rows()` says which batch rows to capture (None: this call is not captured);
    `text_tokens()` how many text tokens lead a single-stream layer's sequence.
    """

    def __init__(
        self,
        original,
        layer: AttentionLayer,
        rows: Callable[[int], slice | None],
        sink: Callable[[AttentionLayer, torch.Tensor], None],
        text_tokens: Callable[[], int | None] = lambda: None,
    ):
        self.original = original
        self.layer = layer
        self.rows = rows
        self.sink = sink
        self.text_tokens = text_tokens
        # diffusers hands a processor only the keyword arguments its __call__ names: name the original's
        self.__call__ = functools.wraps(original.__call__)(functools.partial(CaptureProcessor.__call__, self))
        self.query: torch.Tensor | None = None
        self.key: torch.Tensor | None = None
        self.added_key: torch.Tensor | None = None  # joint attention's text keys (add_k_proj)

    # Forward hooks on attn.to_q / attn.to_k (and add_k_proj) store the projections here.
    def keep_query(self, module, inputs, output) -> None:
        self.query = output

    def keep_key(self, module, inputs, output) -> None:
        self.key = output

    def keep_added_key(self, module, inputs, output) -> None:
        self.added_key = output

    def __call__(self, attn, hidden_states, *args, **kwargs):
        self.query = self.key = self.added_key = None
        output = self.original(attn, hidden_states, *args, **kwargs)  # exactly as called
        query, key, added_key = self.query, self.key, self.added_key
        self.query = self.key = self.added_key = None
        if query is None or key is None:
            return output
        rows = self.rows(query.shape[0])
        if rows is None:
            return output
        # after (attn, hidden_states): encoder_hidden_states, attention_mask, then Flux's rotary embedding
        attention_mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        rotary = kwargs.get("image_rotary_emb", args[2] if len(args) > 2 else None) if self.layer.rotary else None
        if self.layer.stream == "single":
            self.sink(self.layer, single_stream_text_probabilities(attn, query[rows], key[rows], self.text_tokens(), rotary))
        elif added_key is not None:  # joint attention: image queries on the text keys, one softmax over all keys
            self.sink(self.layer, joint_text_probabilities(attn, query[rows], key[rows], added_key[rows], rotary))
        else:
            self.sink(self.layer, attention_probabilities(attn, query[rows], key[rows], attention_mask, rows))
        return output


@contextmanager
def capturing(
    denoiser: nn.Module,
    layers: Sequence[AttentionLayer],
    rows: Callable[[int], slice | None],
    sink: Callable[[AttentionLayer, torch.Tensor], None],
    text_tokens: Callable[[], int | None] = lambda: None,
) -> Iterator[None]:
    """Wrap each of `layers`' processors in a CaptureProcessor (with its query/key hooks) inside
    the block; the denoiser's own processors come back on exit, also after an exception.

    The probabilities keep their autograd graph, so a training loss can be built on them.
    """
    originals = denoiser.attn_processors
    wanted = {layer.path: layer for layer in layers}
    named = dict(denoiser.named_modules())
    processors, handles = {}, []
    try:
        for key, original in originals.items():
            path = key.removesuffix(".processor")
            if path not in wanted:
                processors[key] = original
                continue
            wrapper = CaptureProcessor(original, wanted[path], rows, sink, text_tokens)
            processors[key] = wrapper
            module = named[path]
            handles.append(module.to_q.register_forward_hook(wrapper.keep_query))
            handles.append(module.to_k.register_forward_hook(wrapper.keep_key))
            if getattr(module, "add_k_proj", None) is not None:
                handles.append(module.add_k_proj.register_forward_hook(wrapper.keep_added_key))
        denoiser.set_attn_processor(processors)
        yield
    finally:
        for handle in handles:
            handle.remove()
        denoiser.set_attn_processor(originals)
