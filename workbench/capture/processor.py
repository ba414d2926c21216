"""The capture processor: wraps a layer's own attention processor and computes its attention
probabilities on the side.

The wrapped processor runs untouched, so the pipeline's output is bit-identical. Its query and
key projections are read by forward hooks on `to_q` / `to_k` while it runs (no projection is
computed twice); the probabilities softmax(q k^T * scale) are then formed in float32 for the
rows asked for only. Joint and single-stream layers are read from their own attention call
instead (attention_call.py): its query and key as used, and on CPU the softmax's normaliser
over all keys, which the model computed anyway; their projections are the fallback where the
processor makes no call torch can show (another attention backend).
"""

from __future__ import annotations

import functools
import math
from contextlib import contextmanager
from typing import Callable, Iterator, Literal, Sequence

import torch

from torch import nn

from .attention_call import AttentionCall, AttentionCallRecorder
from .probabilities import attention_probabilities, joint_probabilities, single_stream_probabilities
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

    `sink(layer, probabilities)` receives float32 (rows, heads, image queries, text keys), or for
    `queries="text"` on joint and single-stream layers each text query's probabilities on the
    image keys, transposed to the same layout (rows, heads, image keys, text queries).
    `rows()` says which batch rows to capture (None: this call is not captured);
    `text_tokens()` how many text tokens lead a single-stream layer's sequence.
    Forward hooks on the layer's projections (`hooks()`) keep their outputs in `seen`.
    """

    def __init__(
        self,
        original,
        layer: AttentionLayer,
        rows: Callable[[int], slice | None],
        sink: Callable[[AttentionLayer, torch.Tensor], None],
        text_tokens: Callable[[], int | None] = lambda: None,
        queries: Literal["image", "text"] = "image",
    ):
        self.original = original
        self.layer = layer
        self.rows = rows
        self.sink = sink
        self.text_tokens = text_tokens
        self.queries = queries
        self.seen: dict[str, torch.Tensor] = {}
        # diffusers hands a processor only the keyword arguments its __call__ names: name the original's
        self.__call__ = functools.wraps(original.__call__)(functools.partial(CaptureProcessor.__call__, self))

    def projections(self, attn) -> list[str]:
        """The projections whose outputs the probabilities need."""
        names = ["to_q", "to_k"]
        if self.layer.stream == "joint":
            names += ["add_k_proj"] + (["add_q_proj"] if self.queries == "text" else [])
        return names

    def hooks(self, attn) -> list:
        """Register the projection hooks on the layer `attn`; returns their handles."""
        def keep(name):
            def hook(module, inputs, output):
                self.seen[name] = output
            return hook
        return [getattr(attn, name).register_forward_hook(keep(name)) for name in self.projections(attn)]

    def __call__(self, attn, hidden_states, *args, **kwargs):
        self.seen = {}
        if self.layer.stream in ("joint", "single"):
            recorder = AttentionCallRecorder()
            with recorder:  # sees the layer's own attention call, changes none of its bits
                output = self.original(attn, hidden_states, *args, **kwargs)
            call = recorder.call
            # the call's batch is the layer's unless a processor splits it (perturbed guidance)
            if call is not None and call.query.shape[0] == hidden_states.shape[0]:
                self.seen = {}
                self._report_joint(call, hidden_states.shape[1])
                return output
        else:
            output = self.original(attn, hidden_states, *args, **kwargs)  # exactly as called
        seen, self.seen = self.seen, {}
        if "to_q" not in seen or "to_k" not in seen:
            return output
        rows = self.rows(seen["to_q"].shape[0])
        if rows is None:
            return output
        seen = {name: value[rows] for name, value in seen.items()}
        query, key = seen["to_q"], seen["to_k"]
        # after (attn, hidden_states): encoder_hidden_states, attention_mask, then Flux's rotary embedding
        attention_mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        rotary = kwargs.get("image_rotary_emb", args[2] if len(args) > 2 else None) if self.layer.rotary else None
        text = self.queries == "text"
        if self.layer.stream == "single":
            found = single_stream_probabilities(attn, query, key, self.text_tokens(), rotary, text_queries=text)
        elif self.layer.stream == "joint":  # image and text keys in one softmax
            found = joint_probabilities(attn, query, key, seen["add_k_proj"], rotary, seen.get("add_q_proj"))
        else:
            found = attention_probabilities(attn, query, key, attention_mask, rows)
        self.sink(self.layer, found.transpose(-1, -2) if text else found)
        return output

    def _report_joint(self, call: AttentionCall, n_hidden: int) -> None:
        """The text part of the joint softmax, from the layer's own attention call: its sequence
        is [image; text] (SD3), [text; image] (Flux's double-stream blocks, whose hidden states
        are the image tokens) or [text; image] as the hidden states (single-stream blocks)."""
        rows = self.rows(call.query.shape[0])
        if rows is None:
            return
        total = call.query.shape[2]
        if self.layer.stream == "single":
            n_text = self.text_tokens()
        else:
            n_text = total - n_hidden
        text_first = self.layer.stream == "single" or self.layer.text_first
        text = slice(0, n_text) if text_first else slice(total - n_text, total)
        image = slice(n_text, total) if text_first else slice(0, total - n_text)
        call = call.rows(rows)
        if self.queries == "text":
            self.sink(self.layer, call.probabilities(text, image).transpose(-1, -2))
        else:
            self.sink(self.layer, call.probabilities(image, text))


@contextmanager
def capturing(
    denoiser: nn.Module,
    layers: Sequence[AttentionLayer],
    rows: Callable[[int], slice | None],
    sink: Callable[[AttentionLayer, torch.Tensor], None],
    text_tokens: Callable[[], int | None] = lambda: None,
    queries: Literal["image", "text"] = "image",
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
            layer = wanted[path]
            reads = queries if layer.stream in ("joint", "single") else "image"
            wrapper = CaptureProcessor(original, layer, rows, sink, text_tokens, reads)
            processors[key] = wrapper
            handles += wrapper.hooks(named[path])
        denoiser.set_attn_processor(processors)
        yield
    finally:
        for handle in handles:
            handle.remove()
        denoiser.set_attn_processor(originals)
