"""Concept maps in attention-output space (ConceptAttention, Helbling et al., 2025).

Concept words, which need not be in the prompt, are encoded by the pipeline's own text
encoder(s) and enter the denoiser as extra text tokens that only look: in every joint-attention
block they go through the block's own text-stream weights (adaptive norm, projections, output
projection, feed-forward), their queries attend to the image keys and to their own key, and
nothing else attends to them, so the generation is untouched (bit-identical) and a concept's
map does not depend on the other concepts. A concept's map at a layer is the dot product of
each image token's attention output with the concept's attention output (both before the
output projection), summed over heads; `ConceptStream.maps(softmax=True)` turns the layer's
scores into a distribution over the concepts at each image position, as the paper does.

Applies to joint-attention transformers (SD3's MMDiT, Flux's double-stream blocks): their
blocks have a text stream for concept tokens to flow through. Cross-attention denoisers (UNets,
PixArt) have none; read their raw cross-attention maps instead.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable, Sequence

import torch
from torch import nn

from .architectures import AttentionLayer
from .probabilities import _normed_heads, rotate, split_heads
from .tokens import WordSpan


class ConceptWordError(ValueError):
    """A concept word that cannot be turned into concept tokens (named in the message)."""


def encode_concepts(pipe, words: Sequence[str], text_parts: Sequence[str], limit: int) -> torch.Tensor:
    """Each concept word's text-encoder states, averaged over the word's tokens: (concepts, width).

    The pipeline's own `encode_prompt` encodes each word alone (learned words included); its
    token slots are found as a prompt's are.

    Raises:
        ConceptWordError: no words, more concepts than `limit` (the model's text length), a
            word that is not one whitespace-free word, or one the tokenizer turns into no token
            or only unknown tokens.
    """
    from .maps import PromptTokens

    words = list(words)
    if not words:
        raise ConceptWordError("concepts must name at least one word")
    if len(words) > limit:
        raise ConceptWordError(f"{len(words)} concept words are more than the model's text length of {limit} tokens; ask for at most {limit}")
    for word in words:
        if not isinstance(word, str) or len(word.split()) != 1:
            raise ConceptWordError(f"concept {word!r} is not one word; give each concept as a single word without spaces")
    encoded = _encode_prompt(pipe, words)
    tokens = PromptTokens.from_pipeline(pipe, words, text_parts, encoded.shape[1])
    rows = []
    for i, word in enumerate(words):
        slots = list(tokens.words[i][0].tokens)
        unknown = {getattr(getattr(pipe, name, None), "unk_token", None) for name in text_parts} - {None}
        if not slots or all(tokens.tokens[i][s] in unknown for s in slots):
            raise ConceptWordError(f"the tokenizer cannot encode the concept word {word!r} (it gives no known token)")
        rows.append(encoded[i, slots].mean(0))
    return torch.stack(rows)


def _encode_prompt(pipe, words: list[str]) -> torch.Tensor:
    """`pipe.encode_prompt` on the words, without guidance: its prompt states (batch, tokens, width).
    (The joint-attention pipelines that have concept maps return their prompt states first.)"""
    encode = getattr(pipe, "encode_prompt", None)
    if encode is None:
        raise ConceptWordError(f"{type(pipe).__name__} has no encode_prompt to encode concept words with")
    parameters = inspect.signature(encode).parameters
    options = {name: None for name in ("prompt_2", "prompt_3") if name in parameters}
    if "do_classifier_free_guidance" in parameters:
        options["do_classifier_free_guidance"] = False
    with torch.no_grad():
        output = encode(words, **options)
    return output[0] if isinstance(output, tuple) else output


class ConceptStream:
    """Carries concept tokens through the joint-attention blocks of one denoiser call and
    reports each selected layer's concept scores to `sink(layer, scores)`, scores float32
    (rows, 1, image tokens, concepts).

    `rows()` says which batch rows are captured at this call (None: none); `start(kwargs)`
    is called with the denoiser's forward arguments at each call.
    """

    def __init__(
        self,
        denoiser: nn.Module,
        joint_layers: Sequence[AttentionLayer],
        selected: Sequence[AttentionLayer],
        embeddings: torch.Tensor,
        rows: Callable[[], slice | None],
        sink: Callable[[AttentionLayer, torch.Tensor], None],
    ):
        self.denoiser = denoiser
        self.layers = list(joint_layers)
        self.selected = {layer.path for layer in selected}
        self.embeddings = embeddings
        self.rows = rows
        self.sink = sink
        self.state: torch.Tensor | None = None  # (rows, concepts, width): the concepts' residual stream
        self.block_inputs: dict = {}
        self.seen: dict = {}

    def hooks(self) -> list:
        """Register the hooks; returns their handles."""
        named = dict(self.denoiser.named_modules())
        handles = []
        for layer in self.layers:
            attn = named[layer.path]
            block = named[layer.path.rsplit(".", 1)[0]]
            handles.append(block.register_forward_pre_hook(self._keep_block_inputs, with_kwargs=True))
            handles.append(block.register_forward_hook(self._after_block(layer, block, attn)))
            handles.append(attn.to_k.register_forward_hook(self._keep("key")))
            handles.append(attn.to_v.register_forward_hook(self._keep("value")))
            handles.append(attn.to_out[0].register_forward_pre_hook(self._keep_output))
        return handles

    def start(self) -> None:
        """A denoiser call begins: the concepts enter as the denoiser's text embedder makes them."""
        rows = self.rows()
        if rows is None:
            self.state = None
            return
        embedder = self.denoiser.context_embedder
        weight = next(embedder.parameters())
        with torch.no_grad():
            concepts = embedder(self.embeddings.to(weight.device, weight.dtype))
        self.state = concepts  # broadcast over rows at the first block
        self._rows = rows

    # --- hooks -------------------------------------------------------------------------
    def _keep_block_inputs(self, module, args, kwargs) -> None:
        bound = inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments
        self.block_inputs = {"temb": bound.get("temb"), "rotary": bound.get("image_rotary_emb")}
        self.seen = {}

    def _keep(self, name: str):
        def hook(module, inputs, output):
            self.seen[name] = output
        return hook

    def _keep_output(self, module, inputs):
        self.seen["output"] = inputs[0]

    def _after_block(self, layer: AttentionLayer, block, attn):
        def hook(module, args, output):
            if self.state is None or "output" not in self.seen:
                return
            with torch.no_grad():
                self._advance(layer, block, attn)
        return hook

    # --- the concept tokens' pass through one block -----------------------------------------
    def _advance(self, layer: AttentionLayer, block, attn) -> None:
        rows = self._rows
        temb = self.block_inputs["temb"][rows]
        image_key = _normed_heads(attn, self.seen["key"][rows], "norm_k")
        image_value = split_heads(attn, self.seen["value"][rows])
        image_output = self.seen["output"][rows]  # (rows, image tokens, inner): before to_out
        rotary = self.block_inputs["rotary"]
        if rotary is not None:  # the image positions follow the prompt's text positions
            n_image = image_key.shape[2]
            image_key = rotate(image_key, tuple(part[-n_image:] for part in rotary)).to(image_value.dtype)
        state = self.state.expand(len(image_output), -1, -1) if self.state.dim() == 2 else self.state
        pre_only = getattr(block, "context_pre_only", False)
        if pre_only:
            normed = block.norm1_context(state, temb)
        else:
            normed, gate_msa, shift_mlp, scale_mlp, gate_mlp = block.norm1_context(state, emb=temb)
        query = _normed_heads(attn, attn.add_q_proj(normed), "norm_added_q")
        key = _normed_heads(attn, attn.add_k_proj(normed), "norm_added_k")
        value = split_heads(attn, attn.add_v_proj(normed))
        # text positions carry no rotation in Flux (their ids are zeros), so concepts get none
        output = _look(query, image_key, image_value, key, value)  # (rows, concepts, inner)
        if layer.path in self.selected:
            scores = image_output.float() @ output.float().transpose(1, 2)  # (rows, image tokens, concepts)
            self.sink(layer, scores[:, None])
        if pre_only:
            self.state = None  # the text stream ends here (SD3's last block)
            return
        state = state + gate_msa.unsqueeze(1) * attn.to_add_out(output.to(state.dtype))
        normed = block.norm2_context(state) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        self.state = state + gate_mlp.unsqueeze(1) * block.ff_context(normed)


def _look(query, image_key, image_value, own_key, own_value) -> torch.Tensor:
    """Each concept's attention over the image keys and its own key only (one-way, so no
    concept sees another): (batch, heads, concepts, head_dim) in, (batch, concepts, inner) out."""
    scale = 1.0 / math.sqrt(query.shape[-1])
    q = query.float() * scale
    on_image = q @ image_key.float().transpose(-1, -2)  # (b, h, c, n)
    on_self = (q * own_key.float()).sum(-1, keepdim=True)  # (b, h, c, 1)
    weights = torch.cat([on_image, on_self], dim=-1).softmax(dim=-1)
    mixed = weights[..., :-1] @ image_value.float() + weights[..., -1:] * own_value.float()
    return mixed.transpose(1, 2).flatten(2).to(query.dtype)


def concept_tokens(prompts: Sequence[str], concepts: Sequence[str]):
    """The labels of concept maps: for each prompt, the concepts as its words, one slot each."""
    from .maps import PromptTokens

    spans = [WordSpan(word, list(concepts)[:i].count(word), (i,)) for i, word in enumerate(concepts)]
    return PromptTokens(texts=list(prompts), tokens=[list(concepts) for _ in prompts], words=[list(spans) for _ in prompts])
