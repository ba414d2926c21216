"""Learned word embeddings in every common file format, and putting them into a pipeline.

Formats read (all without unpickling arbitrary objects: `.pt`/`.bin` through
torch.load(weights_only=True), `.safetensors` through safetensors):

- diffusers textual inversion: {token: tensor (d,) or (n, d)} (`learned_embeds.safetensors`
  / `.bin`), which is also the layout of ConceptExpress (`learned_embeds_final.bin`, several
  tokens) and AttenCraft (`<new1>.bin`);
- AUTOMATIC1111 `.pt`: {"string_to_param": {"*": (n, d)}, "string_to_token": ..., "name": ...};
- kohya: {"emb_params": (n, d)}, SDXL {"clip_l": (n, 768), "clip_g": (n, 1280)}, SD3
  {"clip_l", "clip_g", "t5xxl": (n, 4096)}, Flux {"clip_l", "t5xxl"}.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tokenizers import AddedToken

from .tensor_files import read_tensor_file

# kohya's SDXL, SD3 and Flux files name their encoders by model; pipelines name them by
# attribute. T5 is text_encoder_3 in SD3 and text_encoder_2 in Flux: "t5" is resolved on insertion.
ENCODER_KEYS = {"clip_l": "text_encoder", "clip_g": "text_encoder_2", "t5xxl": "t5"}
TEXT_ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3")


class EmbeddingFileError(ValueError):
    """A learned-embedding file that cannot be read safely or has an unknown layout."""


@dataclass(frozen=True)
class LearnedWord:
    """One learned word: its token, its vectors (n_vectors, width), the encoder they feed and
    the file it was read from (named in errors)."""

    token: str
    vectors: torch.Tensor
    encoder: str = "text_encoder"
    source: str = ""

    @property
    def n_vectors(self) -> int:
        return self.vectors.shape[0]


def _as_matrix(path: Path, key: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise EmbeddingFileError(f"{path}: entry {key!r} is a {type(value).__name__}, expected a tensor of shape (width,) or (n_vectors, width)")
    tensor = value.detach().float()
    if tensor.ndim == 1:
        tensor = tensor[None]
    if tensor.ndim != 2 or 0 in tensor.shape:
        raise EmbeddingFileError(f"{path}: entry {key!r} has shape {tuple(value.shape)}, expected (width,) or (n_vectors, width), non-empty")
    if not torch.isfinite(tensor).all():
        raise EmbeddingFileError(f"{path}: entry {key!r} holds NaN or infinite values; the word would make every generation NaN")
    return tensor


def read_embeddings(path: str | Path, token: str | None = None) -> list[LearnedWord]:
    """Read the learned words of a file in any supported format.

    Args:
        path: the embedding file.
        token: the token to use where the file names none (kohya, A1111's "*") or to rename a
            single-word file; default the file name without extension.

    Raises:
        FileNotFoundError: if the file does not exist.
        EmbeddingFileError: a file that needs unpickling, or an unknown layout (lists the keys).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no embedding file at {path}")
    return [replace(word, source=str(path)) for word in _read_words(path, token)]


def _read_words(path: Path, token: str | None) -> list[LearnedWord]:
    raw = read_tensor_file(path, EmbeddingFileError, "an embedding file (diffusers, A1111 or kohya)")
    if not isinstance(raw, dict) or not raw:
        raise EmbeddingFileError(f"{path}: expected a dict of embeddings, got {type(raw).__name__}")
    default = token or path.stem.replace("learned_embeds", "") or "<learned>"
    if "string_to_param" in raw:  # AUTOMATIC1111
        params = raw["string_to_param"]
        if not isinstance(params, dict) or len(params) != 1:
            raise EmbeddingFileError(f"{path}: string_to_param should hold one entry, found {list(params) if isinstance(params, dict) else type(params).__name__}")
        name = token or raw.get("name") or default
        return [LearnedWord(str(name), _as_matrix(path, "string_to_param", next(iter(params.values()))))]
    if "emb_params" in raw:  # kohya, SD 1.x / 2.x
        return [LearnedWord(default, _as_matrix(path, "emb_params", raw["emb_params"]))]
    if set(raw) & set(ENCODER_KEYS):  # kohya / A1111, SDXL, SD3, Flux
        return [LearnedWord(default, _as_matrix(path, key, raw[key]), ENCODER_KEYS[key]) for key in ENCODER_KEYS if key in raw]
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if tensors and len(tensors) == len(raw):  # diffusers / ConceptExpress / AttenCraft
        if token and len(tensors) == 1:
            return [LearnedWord(token, _as_matrix(path, k, v)) for k, v in tensors.items()]
        return [LearnedWord(str(k), _as_matrix(path, k, v)) for k, v in tensors.items()]
    raise EmbeddingFileError(
        f"{path}: unknown embedding layout; found keys {sorted(map(str, raw))[:20]}. Expected a token -> tensor dict "
        "(diffusers, ConceptExpress, AttenCraft), 'string_to_param' (AUTOMATIC1111), 'emb_params' or 'clip_l'/'clip_g' (kohya)"
    )


def slot_tokens(word: LearnedWord) -> list[str]:
    """The tokens a word occupies: "S*" for one vector, "S*", "S*_1", ... for several (diffusers' scheme)."""
    return [word.token] + [f"{word.token}_{i}" for i in range(1, word.n_vectors)]


def tokenizer_of(pipe, encoder: str):
    """The tokenizer that feeds a text encoder ("text_encoder_2" -> `pipe.tokenizer_2`), or None."""
    return getattr(pipe, encoder.replace("text_encoder", "tokenizer"), None)


def text_encoders(pipe) -> list[str]:
    """The pipeline's text-encoder attributes, in order ("text_encoder", "text_encoder_2", ...)."""
    return [name for name in TEXT_ENCODERS if getattr(pipe, name, None) is not None]


def encoder_attribute(pipe, encoder: str) -> str:
    """The pipeline attribute of a text encoder as word files name it: "t5" is the pipeline's T5
    encoder (SD3's text_encoder_3, Flux's text_encoder_2; "a T5 text encoder" where it has
    none, for messages); other names are attributes already."""
    if encoder != "t5":
        return encoder
    t5 = [name for name in text_encoders(pipe) if type(getattr(pipe, name)).__name__.startswith("T5")]
    return t5[0] if t5 else "a T5 text encoder"


def _resolved(pipe, word: LearnedWord) -> LearnedWord:
    """The word with its encoder named by the pipeline's attribute (see encoder_attribute)."""
    return replace(word, encoder=encoder_attribute(pipe, word.encoder))


def _check_fits(pipe, words: list[LearnedWord]) -> None:
    """Every word fits the pipeline: its encoders exist, its widths match, each token covers
    all of the pipeline's text encoders (SDXL's two), and no token is taken."""
    where = lambda word: f" (from {word.source})" if word.source else ""  # noqa: E731
    encoders = text_encoders(pipe)
    covered: dict[str, set[str]] = {}
    for word in words:
        encoder = getattr(pipe, word.encoder, None)
        tokenizer = tokenizer_of(pipe, word.encoder)
        if encoder is None or tokenizer is None:
            raise EmbeddingFileError(
                f"the word {word.token!r}{where(word)} has vectors for {word.encoder}, which this {type(pipe).__name__} "
                f"does not have (its text encoders: {', '.join(encoders)}); the file was made for another model"
            )
        width = encoder.get_input_embeddings().embedding_dim
        if word.vectors.shape[1] != width:
            raise EmbeddingFileError(
                f"the word {word.token!r}{where(word)} has width {word.vectors.shape[1]} but {word.encoder} embeds tokens with width "
                f"{width}; the file was made for another model"
            )
        clashes = [t for t in slot_tokens(word) if t in tokenizer.get_vocab()]
        if clashes:
            raise EmbeddingFileError(f"the tokenizer of {word.encoder} already has {clashes}{where(word)}; pass another token name")
        if word.encoder in covered.setdefault(word.token, set()):
            raise EmbeddingFileError(f"the word {word.token!r}{where(word)} is given twice for {word.encoder}")
        covered[word.token].add(word.encoder)
    for token, have in covered.items():
        if have != set(encoders):
            source = next(w.source for w in words if w.token == token)
            raise EmbeddingFileError(
                f"the word {token!r}{f' (from {source})' if source else ''} has vectors for {', '.join(sorted(have))} but this "
                f"{type(pipe).__name__} encodes prompts with {', '.join(encoders)}; a word needs vectors for every text encoder "
                "(SDXL files hold clip_l and clip_g; SD3's also t5xxl; Flux's clip_l and t5xxl)"
            )


def insert_embeddings(pipe, words: list[LearnedWord]) -> dict[str, list[int]]:
    """Add learned words to the pipeline's tokenizer(s) and text encoder(s), in place; all or
    nothing: every word is checked before any is inserted.

    Returns:
        token -> the token ids of its slots (in the first encoder that has it).

    Raises:
        EmbeddingFileError: a width that does not match the encoder (names the word, its file
            and both sizes), an encoder the pipeline lacks, a word missing an encoder the
            pipeline has (SDXL), or a token the tokenizer already has.
    """
    words = [_resolved(pipe, word) for word in words]
    _check_fits(pipe, words)
    placed: dict[str, list[int]] = {}
    for word in words:
        encoder = getattr(pipe, word.encoder)
        tokenizer = tokenizer_of(pipe, word.encoder)
        table = encoder.get_input_embeddings()
        tokens = slot_tokens(word)
        # normalized=False: a lower-casing tokenizer must keep "S*" as written, so that the
        # multi-vector expansion (diffusers' maybe_convert_prompt) recognises it.
        tokenizer.add_tokens([AddedToken(t, normalized=False) for t in tokens])
        ids = tokenizer.convert_tokens_to_ids(tokens)
        encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            encoder.get_input_embeddings().weight[ids] = word.vectors.to(table.weight.dtype).to(table.weight.device)
        placed.setdefault(word.token, list(ids))
    return placed
