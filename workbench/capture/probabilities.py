"""Attention probabilities computed on the side from a layer's projected queries and keys.

Shared by the capture processor and ELITE's local mapping: both need softmax(q k^T) without
touching the layer's own attention call. Joint attention (SD3's MMDiT) takes one softmax over
image and text keys together; its text part is read as the word heat maps.
"""

from __future__ import annotations

import math

import torch


def split_heads(attn, x: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, heads * head_dim) -> (batch, heads, tokens, head_dim)."""
    batch, tokens, inner = x.shape
    return x.view(batch, tokens, attn.heads, inner // attn.heads).transpose(1, 2)


def _normed_heads(attn, x: torch.Tensor, norm: str) -> torch.Tensor:
    """Projected tokens split into heads and normalised as the layer does (`attn.<norm>`, if it has one)."""
    heads = split_heads(attn, x)
    return getattr(attn, norm)(heads) if getattr(attn, norm, None) is not None else heads


def attention_probabilities(attn, query: torch.Tensor, key: torch.Tensor, attention_mask=None, rows: slice = slice(None)) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) in float32, (batch, heads, queries, keys), from projected
    query (batch, queries, inner) and key (batch, keys, inner); `rows` picks the mask's rows."""
    q, k = _normed_heads(attn, query, "norm_q"), _normed_heads(attn, key, "norm_k")
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if attention_mask is not None:
        mask = attn.prepare_attention_mask(attention_mask, key.shape[1], attention_mask.shape[0])
        mask = mask.view(attention_mask.shape[0], attn.heads, -1, mask.shape[-1])[rows]
        scores = scores + mask.float()
    return scores.softmax(dim=-1)


JOINT_CHUNK = 1024  # image queries per chunk: bounds the (queries x all keys) scores held at once


def joint_text_probabilities(attn, query: torch.Tensor, key: torch.Tensor, added_key: torch.Tensor) -> torch.Tensor:
    """Joint attention's image-query -> text-key probabilities in float32, (batch, heads,
    image queries, text keys), the softmax taken over the whole joint key sequence (image and
    text keys) as the model does, from the projected image query and key (batch, tokens, inner)
    and the projected text key (`add_k_proj`'s output, batch, text tokens, inner)."""
    q, k, t = _normed_heads(attn, query, "norm_q"), _normed_heads(attn, key, "norm_k"), _normed_heads(attn, added_key, "norm_added_k")
    q, k, t = q.float() * (1.0 / math.sqrt(q.shape[-1])), k.float(), t.float()
    parts = []
    for start in range(0, q.shape[2], JOINT_CHUNK):
        chunk = q[:, :, start : start + JOINT_CHUNK]
        on_image, on_text = chunk @ k.transpose(-1, -2), chunk @ t.transpose(-1, -2)
        total = torch.logsumexp(torch.cat([on_image, on_text], dim=-1), dim=-1, keepdim=True)
        parts.append((on_text - total).exp())
    return torch.cat(parts, dim=2)
