"""Attention probabilities computed on the side from a layer's projected queries and keys.

Shared by the capture processor and ELITE's local mapping: both need softmax(q k^T) without
touching the layer's own attention call. Joint attention (SD3's MMDiT, Flux's double-stream
blocks) takes one softmax over image and text keys together, as do Flux's single-stream blocks
over their [text; image] sequence; the text part is read as the word heat maps.
"""

from __future__ import annotations

import math

import torch


def split_heads(attn, x: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, heads * head_dim) -> (batch, heads, tokens, head_dim)."""
    batch, tokens, inner = x.shape
    return x.view(batch, tokens, attn.heads, inner // attn.heads).transpose(1, 2)


def _normed_heads(attn, x: torch.Tensor, norm: str) -> torch.Tensor:
    """Projected tokens split into heads and normalised as the layer does (`attn.<norm>`, if it
    has one): per head, or across heads where the norm spans the whole width (Sana 1.5's)."""
    layer = getattr(attn, norm, None)
    if layer is None:
        return split_heads(attn, x)
    width = getattr(layer, "dim", None) or getattr(layer, "normalized_shape", None)
    if width is not None and tuple(width)[-1] == x.shape[-1] and x.shape[-1] != x.shape[-1] // attn.heads:
        return split_heads(attn, layer(x))
    return layer(split_heads(attn, x))


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


def rotate(x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotary position embedding of (batch, heads, tokens, head_dim) by (cos, sin), each
    (tokens, head_dim) with every value repeated for the pair (x[2i], x[2i+1]) it rotates, as
    Flux's processors apply it (diffusers' apply_rotary_emb with use_real=True)."""
    cos, sin = (part.to(x.device, torch.float32) for part in rotary)
    pairs = x.unflatten(-1, (-1, 2))
    turned = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
    return x.float() * cos + turned.float() * sin


def _split_rotary(rotary, n_text: int) -> tuple[tuple | None, tuple | None]:
    """The rotary (cos, sin) of the text positions and of the image positions (text first)."""
    if rotary is None:
        return None, None
    cos, sin = rotary
    return (cos[:n_text], sin[:n_text]), (cos[n_text:], sin[n_text:])


JOINT_CHUNK = 1024  # image queries per chunk: bounds the (queries x all keys) scores held at once


def joint_probabilities(attn, query: torch.Tensor, key: torch.Tensor, added_key: torch.Tensor, rotary=None,
                        added_query: torch.Tensor | None = None) -> torch.Tensor:
    """Joint attention's image-query -> text-key probabilities in float32, (batch, heads,
    image queries, text keys), the softmax taken over the whole joint key sequence (image and
    text keys) as the model does, from the projected image query and key (batch, tokens, inner)
    and the projected text key (`add_k_proj`'s output, batch, text tokens, inner); `rotary`:
    the layer's (cos, sin) over the text then the image positions (Flux), if it has one.
    Given the projected text query (`add_q_proj`'s output), the text-query -> image-key
    probabilities instead, (batch, heads, text queries, image keys)."""
    k, t = _normed_heads(attn, key, "norm_k"), _normed_heads(attn, added_key, "norm_added_k")
    text_rotary, image_rotary = _split_rotary(rotary, t.shape[2])
    turn = (lambda x, part: rotate(x, part)) if rotary is not None else (lambda x, part: x)  # noqa: E731
    k, t = turn(k, image_rotary), turn(t, text_rotary)
    if added_query is not None:
        return text_share(turn(_normed_heads(attn, added_query, "norm_added_q"), text_rotary), t, k)
    return text_share(turn(_normed_heads(attn, query, "norm_q"), image_rotary), k, t)


def single_stream_probabilities(attn, query: torch.Tensor, key: torch.Tensor, n_text: int, rotary=None,
                                text_queries: bool = False) -> torch.Tensor:
    """The same for an attention over one [text; image] sequence (Flux's single-stream blocks):
    query and key (batch, text + image tokens, inner) as projected; `text_queries` for the
    text-query -> image-key probabilities."""
    q, k = _normed_heads(attn, query, "norm_q"), _normed_heads(attn, key, "norm_k")
    if rotary is not None:
        q, k = rotate(q, rotary), rotate(k, rotary)
    text, image = k[:, :, :n_text], k[:, :, n_text:]
    if text_queries:
        return text_share(q[:, :, :n_text], text, image)
    return text_share(q[:, :, n_text:], image, text)


def text_share(q: torch.Tensor, k: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """softmax over [keys k; keys t] of q's scaled scores, the t part only, float32 (batch,
    heads, queries, t keys); q, k, t: (batch, heads, tokens, head_dim) as the layer uses them."""
    scaled = q.float() * (1.0 / math.sqrt(q.shape[-1]))
    return softmax_part(scaled, torch.cat([k, t], dim=2).float(), slice(k.shape[2], None))


def softmax_part(scaled_query: torch.Tensor, key: torch.Tensor, keys: slice, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax over all of `key` (batch, heads, keys, head_dim) of the already scaled queries'
    scores (batch, heads, queries, head_dim), plus `mask` (batch, heads, queries, all keys;
    boolean: keep, or additive), its `keys` part, float32 (batch, heads, queries, keys part).
    Chunked over queries: bounds the (queries x all keys) scores held at once."""
    key = key.transpose(-1, -2)
    parts = []
    for begin in range(0, scaled_query.shape[2], JOINT_CHUNK):
        chunk = slice(begin, begin + JOINT_CHUNK)
        scores = scaled_query[:, :, chunk] @ key
        if mask is not None:
            part = mask[:, :, chunk]
            scores = scores.masked_fill(~part, float("-inf")) if part.dtype == torch.bool else scores + part.float()
        parts.append(scores.softmax(-1)[..., keys])
    return torch.cat(parts, dim=2)
