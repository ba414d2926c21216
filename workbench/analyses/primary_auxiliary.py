"""Primary versus auxiliary words: which word of an ELITE-style encoder (or of a set of learned
words) carries what.

Words come from an encoder applied to images (ELITE's global mapping on a CLIP vision model,
the ShapesWorld encoder, any callable images -> (n, n_words, width)) or are given directly
((n, n_words, width), e.g. several multi-vector learned words read from files). For them:
each word's norm, the words' mutual cosine similarity and nearest vocabulary tokens, and what
the model draws from a template ("a S*") with the words in the placeholder's slots. With a
mask of the drawn object per generated image, where each word attends (mass on the object:
spatial leakage); with factor labels per example, which factors a linear probe reads from each
word (informational leakage) and the disentanglement of the words. What cannot be computed
without masks or labels is reported as absent, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..capture import trace
from ..metrics import cosine_similarity_matrix, dci_fast, infomec, mass_inside, mig, nearest_tokens, probe_leakage
from ..metrics.representations import ProbeLeakage
from ..pipelines.elite import injected_words, words_by_encoder
from ..pipelines.embeddings import LearnedWord, slot_tokens, tokenizer_of
from .generation import generation_options, pipeline_prompts

# (example index, generated image (y, x, 3) uint8) -> the drawn object's (y, x) bool mask, or None
ObjectMask = Callable[[int, np.ndarray], "np.ndarray | None"]
MIN_PROBE_EXAMPLES = 20


def word_names(n_words: int) -> list[str]:
    """w0 (primary), w1..wk (auxiliary)."""
    return [f"w{i}" for i in range(n_words)]


def words_of(learned: Sequence[Sequence[LearnedWord]]) -> torch.Tensor | dict[str, torch.Tensor]:
    """Stack learned words as examples: one row per group (e.g. per file), its words' vectors in
    order, (n, n_words, width); a multi-vector word gives several words. Words with a vector in
    each of SDXL's text encoders give one such tensor per encoder, {"text_encoder": ...,
    "text_encoder_2": ...}.

    Raises:
        ValueError: groups with different numbers of vectors or widths (names the group).
    """
    if not learned:
        raise ValueError("no learned words given")
    encoders = sorted({word.encoder for group in learned for word in group})
    per_encoder = {}
    for encoder in encoders:
        groups = [[word for word in group if word.encoder == encoder] for group in learned]
        rows = [torch.cat([w.vectors for w in group]) if group else torch.zeros(0, 0) for group in groups]
        shape = rows[0].shape
        for group, original, row in zip(groups, learned, rows):
            if row.shape != shape or not len(row):
                source = original[0].source or original[0].token if original else "?"
                raise ValueError(f"learned words of {source} have {tuple(row.shape)} (vectors, width) for {encoder}; "
                                 f"the first group has {tuple(shape)}")
        per_encoder[encoder] = torch.stack(rows)
    return per_encoder["text_encoder"] if encoders == ["text_encoder"] else per_encoder


@dataclass
class WordComparison:
    """What each learned word carries; arrays are indexed by example, then word (w0 first).

    `object_mass`, `probes` and `disentanglement` are None when their inputs were not given;
    `absent` says, for each, why.
    """

    words: np.ndarray  # (examples, n_words, width); SDXL: each word's two encoders' vectors side by side
    norms: np.ndarray  # (examples, n_words)
    cosine: np.ndarray  # (n_words, n_words), mean over examples
    nearest: pd.DataFrame  # query word, rank, token, similarity (words averaged over examples)
    generated: np.ndarray  # (examples, y, x, 3) uint8: what the model drew from the template
    object_mass: np.ndarray | None = None  # (examples, n_words): fraction of the word's attention on the drawn object
    probes: ProbeLeakage | None = None
    disentanglement: dict[str, float] | None = None
    absent: dict[str, str] = field(default_factory=dict)  # result -> why it was not computed

    @property
    def names(self) -> list[str]:
        return word_names(self.words.shape[1])

    def to_frame(self) -> pd.DataFrame:
        """Tidy per example and word: image, word, norm, object_mass (NaN without masks)."""
        n_images, n_words = self.norms.shape
        mass = self.object_mass.ravel() if self.object_mass is not None else np.full(n_images * n_words, np.nan)
        return pd.DataFrame({
            "image": np.repeat(np.arange(n_images), n_words),
            "word": self.names * n_images,
            "norm": self.norms.ravel(),
            "object_mass": mass,
        })


def _encode(encoder, images) -> torch.Tensor:
    """An encoder's words for images: its `encode` (any images) when it has one, else a call."""
    words = encoder.encode(images) if hasattr(encoder, "encode") else encoder(images)
    if not isinstance(words, torch.Tensor) or words.ndim != 3:
        got = tuple(words.shape) if isinstance(words, torch.Tensor) else type(words).__name__
        raise ValueError(f"the encoder returned {got}; expected words (images, n_words, width)")
    return words.detach().float().cpu()


def _batches(images, size: int):
    for start in range(0, len(images), size):
        yield start, images[start : start + size]


@torch.no_grad()
def word_keys(maps, placeholder: str, n_words: int) -> list[list[int]]:
    """The text keys of each of the placeholder's words in the traced prompts: word j's slot
    token in every tokenizer's part of the keys (SD3: CLIP's and T5's), without the separators
    a SentencePiece tokenizer puts between added tokens."""
    names = slot_tokens(LearnedWord(placeholder, torch.zeros(n_words, 1)))
    span, strings = maps.word_span(placeholder, prompt=0).tokens, maps.tokens.tokens[0]
    keys = [[k for k in span if strings[k].lstrip("\u2581") == name] for name in names]
    missing = [name for name, found in zip(names, keys) if not found]
    if missing:
        raise RuntimeError(f"the traced prompt {maps.tokens.texts[0]!r} holds no key of {', '.join(missing)}")
    return keys


def compare_words(
    pipe,
    words: torch.Tensor | dict[str, torch.Tensor] | Callable,
    images: Sequence | torch.Tensor | None = None,
    labels: pd.DataFrame | None = None,
    object_masks: ObjectMask | None = None,
    template: str = "a S*",
    placeholder: str = "S*",
    steps: int = 25,
    guidance_scale: float | None = None,
    batch_size: int = 8,
    seed: int = 0,
) -> WordComparison:
    """Run the comparison (see the module docstring).

    Args:
        pipe: the pipeline the words are for (its text encoders' widths).
        words: (n, n_words, width) given words; for SDXL one such tensor per text encoder
            ({"text_encoder": ..., "text_encoder_2": ...}, what `words_of` gives for SDXL files);
            or an encoder applied to `images` (an ELITEEncoder, the ShapesWorld encoder, or
            any images -> (n, n_words, width)).
        images: the encoder's input (PIL images, files, arrays, or a (n, 3, y, x) tensor in [0, 1]).
        labels: factor labels, one row per example, one column per factor (for the probes and
            disentanglement; at least 20 examples).
        object_masks: the drawn object's mask in each generated image (for the attention mass).
        template: the prompt the words are put into, containing the placeholder once.
        steps: denoising steps of the generation.
        guidance_scale: the guidance (default: the pipeline's own).
        seed: seeds the generation.

    Raises:
        ValueError: a template without the placeholder, an encoder without images, labels
            whose row count is not the examples', or words of the wrong shape.
    """
    if template.count(placeholder) != 1:
        raise ValueError(f"template {template!r} must contain the placeholder {placeholder!r} once, e.g. 'a {placeholder}'")
    if callable(words) and not isinstance(words, (torch.Tensor, dict)):
        if images is None or len(images) == 0:
            raise ValueError("words from an encoder need images to encode; got none")
        words = torch.cat([_encode(words, batch) for _, batch in _batches(images, batch_size)])
    per_encoder = {name: w.detach().float().cpu() for name, w in words_by_encoder(words, pipe).items()}
    first = next(iter(per_encoder))
    n_words = per_encoder[first].shape[1]
    joined = torch.cat(list(per_encoder.values()), dim=-1)  # a word's vectors in every text encoder, side by side
    n = len(joined)
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels have {len(labels)} rows but there are {n} examples")
    options = generation_options(pipe, guidance_scale=guidance_scale)
    generator = torch.Generator().manual_seed(seed)
    generated, masses = [], []
    for start in tqdm(range(0, n, batch_size), desc="words -> images"):
        batch = {name: w[start : start + batch_size] for name, w in per_encoder.items()}
        with injected_words(pipe, batch, placeholder) as slot_ids, trace(pipe, layers="all") as tr:
            prompts = pipeline_prompts(pipe, [template] * len(batch[first]))
            drawn = pipe(prompts, num_inference_steps=steps, generator=generator, output_type="np", **options).images
        drawn = (np.asarray(drawn) * 255).round().astype(np.uint8)
        maps = tr.attention_maps()
        keys = word_keys(maps, placeholder, n_words)
        for b, image in enumerate(drawn):
            mask = object_masks(start + b, image) if object_masks is not None else None
            masses.append([mass_inside(np.mean([maps.token(k, prompt=b).numpy() for k in word], axis=0), mask)
                           if mask is not None else np.nan for word in keys])
        generated.append(drawn)
    words_np = joined.numpy()
    names = word_names(words_np.shape[1])
    # nearest tokens in the first encoder's vocabulary, without the placeholder's own slots (no
    # embedding of their own) or special tokens
    tokenizer = tokenizer_of(pipe, first)
    table = getattr(pipe, first).get_input_embeddings().weight.detach().float().cpu().numpy()
    special = set(tokenizer.all_special_ids)
    keep = [i for i in range(len(table)) if i not in slot_ids and i not in special]
    nearest = nearest_tokens(per_encoder[first].numpy().mean(axis=0), table[keep], tokenizer.convert_ids_to_tokens(keep), k=3, names=names)
    nearest["token_id"] = [keep[i] for i in nearest.token_id]
    result = WordComparison(
        words=words_np, norms=np.linalg.norm(words_np, axis=-1),
        cosine=np.mean([cosine_similarity_matrix(w) for w in words_np], axis=0),
        nearest=nearest, generated=np.concatenate(generated),
    )
    masses = np.asarray(masses, dtype=float)
    if object_masks is None:
        result.absent["object_mass"] = "no object masks given: where each word attends needs the drawn object's mask per generated image"
    elif np.isnan(masses).all():
        result.absent["object_mass"] = "the object-mask source found no drawn object in any generated image"
    else:
        result.object_mass = masses
    if labels is None:
        result.absent["probes"] = result.absent["disentanglement"] = "no factor labels given: which word carries which factor needs a label per example"
    elif n < MIN_PROBE_EXAMPLES:
        result.absent["probes"] = result.absent["disentanglement"] = f"{n} examples; fitting and testing probes needs at least {MIN_PROBE_EXAMPLES}"
    else:
        result.probes = probe_leakage({name: words_np[:, i] for i, name in enumerate(names)}, labels)
        codes = words_np.reshape(n, -1)
        coded = np.stack([pd.factorize(labels[c])[0] for c in labels.columns], axis=1)
        fast = dci_fast(codes, coded, seed=seed)
        info = infomec(codes, coded, seed=seed)
        result.disentanglement = {"mig": mig(codes, coded), "dci_disentanglement": fast.disentanglement, "dci_completeness": fast.completeness,
                                  "dci_informativeness": fast.informativeness, "infom": info.infom, "infoe": info.infoe, "infoc": info.infoc}
    return result
