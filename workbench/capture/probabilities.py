"""Attention probabilities computed on the side from a layer's projected queries and keys.

Shared by the capture processor and ELITE's local mapping: both need softmax(q k^T) without
touching the layer's own attention call.
"""

from __future__ import annotations

import math

import torch


def split_heads(attn, x: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, heads * head_dim) -> (batch, heads, tokens, head_dim)."""
    batch, tokens, inner = x.shape
    return x.view(batch, tokens, attn.heads, inner // attn.heads).transpose(1, 2)


def attention_probabilities(attn, query: torch.Tensor, key: torch.Tensor, attention_mask=None, rows: slice = slice(None)) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) in float32, (batch, heads, queries, keys), from projected
    query (batch, queries, inner) and key (batch, keys, inner); `rows` picks the mask's rows."""
    q, k = split_heads(attn, query), split_heads(attn, key)
    if getattr(attn, "norm_q", None) is not None:
        q = attn.norm_q(q)
    if getattr(attn, "norm_k", None) is not None:
        k = attn.norm_k(k)
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if attention_mask is not None:
        mask = attn.prepare_attention_mask(attention_mask, key.shape[1], attention_mask.shape[0])
        mask = mask.view(attention_mask.shape[0], attn.heads, -1, mask.shape[-1])[rows]
        scores = scores + mask.float()
    return scores.softmax(dim=-1)
