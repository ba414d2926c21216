"""ELITE-style encoders (Wei et al., 2023): an image becomes a primary word and auxiliary words.

Global mapping: hierarchical features of an image encoder (CLS + patch tokens from several
layers, deepest first) map to k+1 words, word i = mapping_i(CLS_i) + mean_p mapping_patch_i(patch_p,i);
w0 (from the deepest layer) is the primary word, w1..wk the auxiliary words. The words take the
placeholder's slots in the prompt ("S*" -> "S* S*_1 ... S*_k", later tokens shift), written
into the text encoder's token embeddings by a forward hook while the block is open.

ELITE's released `global_mapper.pt` also holds fine-tuned key/value projections for every
cross-attention layer (`<module path with dots as underscores>_to_k.weight` / `_to_v.weight`);
ELITE applies them to the whole text context, so loading them into each layer's own to_k/to_v
is the same computation, and keeps the pipeline's processors (and tracing) unchanged.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from .embeddings import LearnedWord, encoder_attribute, insert_embeddings, slot_tokens, tokenizer_of
from .tensor_files import read_tensor_file


def mapping_mlp(input_dim: int, hidden: int, output_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(input_dim, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(),
        nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(),
        nn.Linear(hidden, output_dim),
    )


class GlobalMapping(nn.Module):
    """ELITE's global mapping network (its `Mapper` layout: mapping_{i}, mapping_patch_{i}).

    Args:
        input_dim: width of the image encoder's features.
        output_dim: width of the text encoder's token embeddings.
        n_words: k + 1 (ELITE uses 5: one primary, four auxiliary).
        hidden: width of the MLPs (ELITE: 1024).
    """

    def __init__(self, input_dim: int, output_dim: int, n_words: int = 5, hidden: int = 1024):
        super().__init__()
        if n_words < 1:
            raise ValueError(f"n_words must be >= 1, got {n_words}")
        self.n_words = n_words
        for i in range(n_words):
            self.add_module(f"mapping_{i}", mapping_mlp(input_dim, hidden, output_dim))
            self.add_module(f"mapping_patch_{i}", mapping_mlp(input_dim, hidden, output_dim))

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """features: n_words tensors (batch, 1 + patches, input_dim), deepest layer first.
        Returns (batch, n_words, output_dim): w0 primary, then the auxiliary words."""
        if len(features) != self.n_words:
            raise ValueError(f"expected features of {self.n_words} layers (deepest first), got {len(features)}")
        words = [
            getattr(self, f"mapping_{i}")(f[:, :1]) + getattr(self, f"mapping_patch_{i}")(f[:, 1:]).mean(dim=1, keepdim=True)
            for i, f in enumerate(features)
        ]
        return torch.cat(words, dim=1)


# CLIP's pixel normalisation, and the layers ELITE's released mapper reads (deepest first)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ELITE_FEATURE_LAYERS = (24, 4, 8, 12, 16)


class ELITEEncoder(nn.Module):
    """A user's ELITE: images -> words (batch, n_words, width), w0 primary.

    A CLIP vision model's hidden states (CLS and patches) at `feature_layers`, deepest first,
    through the global mapping; pixels normalised as CLIP's processor does.

    Args:
        vision: a transformers CLIPVisionModel (ELITE: openai/clip-vit-large-patch14).
        mapping: the global mapping, e.g. from `load_global_mapper`.
        feature_layers: hidden-state indices, one per word (ELITE: 24, 4, 8, 12, 16).

    Raises:
        ValueError: a layer count that is not the mapping's word count, or a layer the vision
            model does not have.
    """

    def __init__(self, vision: nn.Module, mapping: GlobalMapping, feature_layers: Sequence[int] = ELITE_FEATURE_LAYERS):
        super().__init__()
        depth = vision.config.num_hidden_layers
        if len(feature_layers) != mapping.n_words:
            raise ValueError(f"{len(feature_layers)} feature layers for a mapping of {mapping.n_words} words; give one layer per word")
        if any(not 0 <= layer <= depth for layer in feature_layers):
            raise ValueError(f"feature_layers {tuple(feature_layers)} must lie in 0..{depth} (the vision model's hidden states)")
        self.vision, self.mapping, self.feature_layers = vision, mapping, tuple(feature_layers)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def image_size(self) -> int:
        return self.vision.config.image_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (batch, 3, image_size, image_size) in [0, 1] -> words (batch, n_words, width)."""
        states = self.vision(pixel_values=(images - self.mean) / self.std, output_hidden_states=True).hidden_states
        return self.mapping([states[layer] for layer in self.feature_layers])

    @torch.no_grad()
    def encode(self, images) -> torch.Tensor:
        """Words for a user's images of any mode and size (see `image_input.encoder_pixels`)."""
        from .image_input import encoder_pixels

        return self(encoder_pixels(images, self.image_size))


class ELITECheckpointError(ValueError):
    """A checkpoint whose keys do not fit ELITE's layout (lists missing and unexpected keys)."""


def cross_attention_paths(unet: nn.Module) -> dict[str, str]:
    """ELITE's key prefix (module path, dots as underscores) -> path of each cross-attention layer."""
    return {
        path.replace(".", "_"): path
        for path, module in unet.named_modules()
        if getattr(module, "is_cross_attention", False) and hasattr(module, "to_k")
    }


def count_mappings(state: dict) -> int:
    """How many mapping_{i} networks a checkpoint holds."""
    return len({k.split(".")[0] for k in state if k.startswith("mapping_") and not k.startswith("mapping_patch_")})


def read_mapper_checkpoint(path: str | Path, unet: nn.Module, build: Callable[[int], nn.Module], what: str) -> tuple[nn.Module, dict, dict[str, str]]:
    """Load an ELITE mapper file and check its keys: the mapping network's parameters (built by
    `build(n_mappings)`) plus `_to_k` / `_to_v` weights for every cross-attention layer of `unet`.

    Returns:
        The mapping network with its weights, the raw state, and ELITE's key prefix -> layer path.

    Raises:
        ELITECheckpointError: naming missing and unexpected keys, or weights that do not fit.
    """
    state = read_tensor_file(path, ELITECheckpointError, f"ELITE's {what} (a state dict)")
    if not isinstance(state, dict):
        raise ELITECheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
    mapper = build(max(count_mappings(state), 1))
    layers = cross_attention_paths(unet)
    expected = set(mapper.state_dict()) | {f"{prefix}_{kind}.weight" for prefix in layers for kind in ("to_k", "to_v")}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        more = lambda keys: " ..." if len(keys) > 10 else ""  # noqa: E731
        raise ELITECheckpointError(
            f"{path} does not fit ELITE's {what} layout for this UNet: missing keys {missing[:10]}{more(missing)}, "
            f"unexpected keys {unexpected[:10]}{more(unexpected)}"
        )
    try:
        mapper.load_state_dict({k: v for k, v in state.items() if k.startswith("mapping_")})
    except RuntimeError as error:
        raise ELITECheckpointError(f"{path}: the mapping weights do not fit the network's sizes: {error}") from error
    return mapper, state, layers


def load_global_mapper(path: str | Path, unet: nn.Module, input_dim: int, output_dim: int, hidden: int = 1024) -> GlobalMapping:
    """Read an ELITE `global_mapper.pt`: returns the mapping network and writes the fine-tuned
    key/value projections into `unet`'s cross-attention layers (in place).

    Raises:
        ELITECheckpointError: naming missing and unexpected keys, or shapes that do not fit.
    """
    build = lambda n: GlobalMapping(input_dim, output_dim, n_words=n, hidden=hidden)  # noqa: E731
    mapper, state, layers = read_mapper_checkpoint(path, unet, build, "global-mapper")
    with torch.no_grad():
        for prefix, layer_path in layers.items():
            for kind in ("to_k", "to_v"):
                target = getattr(unet.get_submodule(layer_path), kind).weight
                source = state[f"{prefix}_{kind}.weight"]
                if source.shape != target.shape:
                    raise ELITECheckpointError(f"{path}: {prefix}_{kind}.weight has shape {tuple(source.shape)}, the UNet's {layer_path}.{kind} has {tuple(target.shape)}")
                target.copy_(source.to(target.dtype))
    return mapper


def words_by_encoder(words, pipe=None) -> dict[str, torch.Tensor]:
    """Words as {text encoder: (n, n_words, width)}: a single array is the first encoder's.
    With `pipe`, the encoders are named by its attributes ("t5" from a word file becomes SD3's
    text_encoder_3 or Flux's text_encoder_2) and ordered as the pipeline numbers them.

    Raises:
        ValueError: an array that is not 3-D or is empty, or encoders given different example
            or word counts.
    """
    per_encoder = {k: torch.as_tensor(v) for k, v in (words.items() if isinstance(words, dict) else [("text_encoder", words)])}
    if pipe is not None:
        per_encoder = dict(sorted(((encoder_attribute(pipe, k), v) for k, v in per_encoder.items()), key=lambda item: item[0]))
    shapes = {k: tuple(v.shape) for k, v in per_encoder.items()}
    if not shapes or any(len(s) != 3 or 0 in s for s in shapes.values()):
        raise ValueError(f"words must be a non-empty (examples, n_words, width) array, got shape {' '.join(map(str, shapes.values())) or 'none'}")
    if len({s[:2] for s in shapes.values()}) != 1:
        raise ValueError(f"words of each text encoder must have the same examples and n_words; got {shapes}")
    return per_encoder


@contextmanager
def injected_words(pipe, words: torch.Tensor | dict[str, torch.Tensor], placeholder: str = "S*") -> Iterator[list[int]]:
    """While open, the placeholder's slots in every prompt carry the given words.

    Args:
        pipe: a pipeline with `tokenizer` and `text_encoder` (and `text_encoder_2` for SDXL).
        words: (batch, n_words, width) for the first text encoder, or one such tensor per text
            encoder ({"text_encoder": ..., "text_encoder_2": ...}: SDXL's words have a vector in
            each): row b feeds prompt b; slot j of the placeholder gets word j.
        placeholder: the placeholder token; prompts must contain it (e.g. "a photo of S*").

    Yields:
        The token ids of the placeholder's slots (w0 first), in the first given encoder's tokenizer.

    Raises:
        ValueError: a width that does not fit an encoder, encoders the pipeline lacks or left
            out, tensors of different batch or word counts, or a batch of another size.
    """
    per_encoder = words_by_encoder(words, pipe)
    for name, w in per_encoder.items():
        encoder = getattr(pipe, name, None)
        if encoder is None:
            raise ValueError(f"words were given for {name}, which this {type(pipe).__name__} does not have")
        width = encoder.get_input_embeddings().embedding_dim
        if w.shape[2] != width:
            raise ValueError(f"words for {name} have width {w.shape[2]}; it embeds tokens with width {width}")
    batch, n_words = next(iter(per_encoder.values())).shape[:2]
    tokens = slot_tokens(LearnedWord(placeholder, torch.zeros(n_words, 1)))
    known = pipe.tokenizer.get_vocab()
    beyond = f"{placeholder}_{len(tokens)}"
    if beyond in known:  # the prompt expansion would give the placeholder more slots than words
        raise ValueError(f"the pipeline's {placeholder!r} already has more than {len(tokens)} slots ({beyond} exists); use another placeholder")
    missing = [t for t in tokens if t not in known]  # a placeholder used before with fewer words keeps its slots
    insert_embeddings(pipe, [LearnedWord(t, torch.zeros(1, w.shape[2]), encoder=name) for t in missing for name, w in per_encoder.items()])
    # each encoder reads its own tokenizer's ids (SDXL's two tokenizers may number added tokens apart)
    ids = {name: tokenizer_of(pipe, name).convert_tokens_to_ids(tokens) for name in per_encoder}

    def writer(encoder_words: torch.Tensor, encoder_ids: list[int]):
        slots = torch.tensor(encoder_ids)

        def write(module, inputs, output):
            input_ids = inputs[0]
            hits = torch.isin(input_ids, slots.to(input_ids.device))
            if not hits.any():
                return output  # e.g. the negative prompt
            if input_ids.shape[0] != batch:
                raise ValueError(f"the prompt batch has {input_ids.shape[0]} rows but words were given for {batch} images")
            output = output.clone()
            for j, token_id in enumerate(encoder_ids):
                rows, cols = torch.nonzero(input_ids == token_id, as_tuple=True)
                output[rows, cols] = encoder_words[rows, j].to(output.dtype).to(output.device)
            return output

        return write

    handles = [getattr(pipe, name).get_input_embeddings().register_forward_hook(writer(w, ids[name])) for name, w in per_encoder.items()]
    try:
        yield list(ids[next(iter(per_encoder))])
    finally:
        for handle in handles:
            handle.remove()
