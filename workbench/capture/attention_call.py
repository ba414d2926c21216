"""The layer's own attention call, seen from outside: the query and key it was given and, where
cheap, the log-sum-exp of each query's scores over every key.

A joint-attention layer (SD3's MMDiT, Flux's double- and single-stream blocks) takes one softmax
over its image and text keys together; the word heat maps are its text part. Their normaliser
needs each query's scores on all keys, a second attention's worth of work if recomputed. The
softmax the model itself runs already has it: torch's CPU flash kernel returns the log-sum-exp
beside the output. So while the wrapped processor runs, a TorchFunctionMode (PyTorch's
extension point for observing calls) sees its `scaled_dot_product_attention` call, keeps the
query and key exactly as the model used them (normalised, rotated, in the model's dtype) and,
where torch would run that CPU flash kernel anyway, runs the kernel itself to keep the
log-sum-exp: the same kernel on the same inputs, so the same output bits. The probabilities
of the text keys then cost one (queries x text keys) product.

Elsewhere (a GPU, an attention mask, a graph being recorded for a loss) the call runs untouched
and only the query and key are kept; the normaliser is then recomputed from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend
from torch.overrides import TorchFunctionMode

from .probabilities import softmax_part

_ARGUMENTS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


@dataclass
class AttentionCall:
    """One scaled_dot_product_attention call as the model made it.

    query, key: (batch, heads, tokens, head_dim) as passed (the model's dtype; grouped keys
        repeated to the query's heads).
    scale: the scores' scale (1/sqrt(head_dim) unless the call named one).
    logsumexp: float32 (batch, heads, queries), log of each query's softmax normaliser over
        all keys, when the kernel gave it; None otherwise.
    mask: the call's attention mask (boolean: True attends; or added to the scores), if any.
    """

    query: torch.Tensor
    key: torch.Tensor
    scale: float
    logsumexp: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def rows(self, rows: slice) -> "AttentionCall":
        """The same call for batch rows `rows` only."""
        mask = self.mask
        if mask is not None and mask.dim() == 4 and mask.shape[0] > 1:
            mask = mask[rows]
        logsumexp = None if self.logsumexp is None else self.logsumexp[rows]
        return AttentionCall(self.query[rows], self.key[rows], self.scale, logsumexp, mask)

    def probabilities(self, queries: slice, keys: slice) -> torch.Tensor:
        """softmax over all keys of the scaled scores (with the call's mask), its `keys` part
        for the `queries`, float32 (batch, heads, queries, keys)."""
        q = self.query[:, :, queries].float() * self.scale
        if self.logsumexp is not None:
            scores = q @ self.key[:, :, keys].float().transpose(-1, -2)
            return (scores - self.logsumexp[:, :, queries, None]).exp()
        mask = None
        if self.mask is not None:
            mask = self.mask.expand(*q.shape[:2], self.query.shape[2], self.key.shape[2])[:, :, queries]
        return softmax_part(q, self.key.float(), keys, mask)


class AttentionCallRecorder(TorchFunctionMode):
    """Inside `with recorder:` (one recorder per processor call; torch-function modes are
    per thread), keeps the first scaled_dot_product_attention call as `recorder.call`: None if
    the processor made none (another attention backend) or made a causal or dropout one."""

    def __init__(self):
        super().__init__()
        self.call: AttentionCall | None = None
        self._done = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention or self._done:
            return func(*args, **kwargs)
        self._done = True
        given = dict(zip(_ARGUMENTS, args)) | kwargs
        query, key, value = given["query"], given["key"], given["value"]
        if given.get("is_causal") or given.get("dropout_p", 0.0) != 0.0 or query.dim() != 4:
            return func(*args, **kwargs)
        scale = 1.0 / math.sqrt(query.shape[-1]) if given.get("scale") is None else float(given["scale"])
        grouped = key.shape[1] != query.shape[1]
        keys = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1) if grouped else key
        if not _flash_on_cpu(given):
            self.call = AttentionCall(query, keys, scale, mask=given.get("attn_mask"))
            return func(*args, **kwargs)
        output, logsumexp = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value, scale=given.get("scale"))
        self.call = AttentionCall(query, keys, scale, logsumexp)
        return output


def _flash_on_cpu(given: dict) -> bool:
    """Whether torch would answer this call with its CPU flash kernel on plain tensors as given
    (no autocast, which casts below this mode), unmasked, and no graph is being recorded (the
    kernel's log-sum-exp has no gradient)."""
    query, key, value = given["query"], given["key"], given["value"]
    if any(type(t) is not torch.Tensor or t.is_nested or t.device.type != "cpu" for t in (query, key, value)):
        return False
    if given.get("attn_mask") is not None or given.get("enable_gqa") or torch.is_autocast_enabled("cpu"):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value)):
        return False
    choice = torch._fused_sdp_choice(query, key, value, scale=given.get("scale"))
    return choice == SDPBackend.FLASH_ATTENTION.value
