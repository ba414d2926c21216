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
from ..pipelines.elite import injected_words
from ..pipelines.embeddings import LearnedWord
from .generation import generation_options

# (example index, generated image (y, x, 3) uint8) -> the drawn object's (y, x) bool mask, or None
ObjectMask = Callable[[int, np.ndarray], "np.ndarray | None"]
MIN_PROBE_EXAMPLES = 20


def word_names(n_words: int) -> list[str]:
    """w0 (primary), w1..wk (auxiliary)."""
    return [f"w{i}" for i in range(n_words)]


def words_of(learned: Sequence[Sequence[LearnedWord]]) -> torch.Tensor:
    """Stack learned words as examples: one row per group (e.g. per file), its words' vectors in
    order, (n, n_words, width); a multi-vector word gives several words.

    Raises:
        ValueError: groups with different numbers of vectors or widths (names the group).
    """
    rows = [torch.cat([w.vectors for w in group]) for group in learned]
    if not rows:
        raise ValueError("no learned words given")
    shape = rows[0].shape
    for group, row in zip(learned, rows):
        if row.shape != shape:
            source = group[0].source or group[0].token if group else "?"
            raise ValueError(f"learned words of {source} have {tuple(row.shape)} (vectors, width); the first group has {tuple(shape)}")
    return torch.stack(rows)


@dataclass
class WordComparison:
    """What each learned word carries; arrays are indexed by example, then word (w0 first).

    `object_mass`, `probes` and `disentanglement` are None when their inputs were not given;
    `absent` says, for each, why.
    """

    words: np.ndarray  # (examples, n_words, width)
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
def compare_words(
    pipe,
    words: torch.Tensor | Callable,
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
        pipe: the pipeline the words are for (its text encoder's width).
        words: (n, n_words, width) given words, or an encoder applied to `images` (an
            ELITEEncoder, the ShapesWorld encoder, or any images -> (n, n_words, width)).
        images: the encoder's input (PIL images, files, arrays, or a (n, 3, y, x) tensor in [0, 1]).
        labels: factor labels, one row per example, one column per factor (for the probes and
            disentanglement; at least 20 examples).
        object_masks: the drawn object's mask in each generated image (for the attention mass).
        template: the prompt the words are put into, containing the placeholder once.
        steps, guidance_scale, seed: the generation (guidance: the pipeline's own by default).

    Raises:
        ValueError: a template without the placeholder, an encoder without images, labels
            whose row count is not the examples', or words of the wrong shape.
    """
    if template.count(placeholder) != 1:
        raise ValueError(f"template {template!r} must contain the placeholder {placeholder!r} once, e.g. 'a {placeholder}'")
    if callable(words) and not isinstance(words, torch.Tensor):
        if images is None or len(images) == 0:
            raise ValueError("words from an encoder need images to encode; got none")
        words = torch.cat([_encode(words, batch) for _, batch in _batches(images, batch_size)])
    words = torch.as_tensor(words).detach().float().cpu()
    if words.ndim != 3 or 0 in words.shape:
        raise ValueError(f"words must be a non-empty (examples, n_words, width) array, got shape {tuple(words.shape)}")
    n = len(words)
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels have {len(labels)} rows but there are {n} examples")
    options = generation_options(pipe, guidance_scale=guidance_scale)
    generator = torch.Generator().manual_seed(seed)
    generated, masses = [], []
    for start, batch in tqdm(list(_batches(words, batch_size)), desc="words -> images"):
        with injected_words(pipe, batch, placeholder) as slot_ids, trace(pipe, layers="all") as tr:
            drawn = pipe([template] * len(batch), num_inference_steps=steps, generator=generator, output_type="np", **options).images
        drawn = (np.asarray(drawn) * 255).round().astype(np.uint8)
        maps = tr.attention_maps()
        slots = maps.word_span(placeholder, prompt=0).tokens
        for b, image in enumerate(drawn):
            mask = object_masks(start + b, image) if object_masks is not None else None
            masses.append([mass_inside(maps.token(slot, prompt=b).numpy(), mask) if mask is not None else np.nan for slot in slots])
        generated.append(drawn)
    words_np = words.numpy()
    names = word_names(words_np.shape[1])
    # the vocabulary without the placeholder's own slots (no embedding of their own) or special tokens
    table = pipe.text_encoder.get_input_embeddings().weight.detach().float().cpu().numpy()
    special = set(pipe.tokenizer.all_special_ids)
    keep = [i for i in range(len(table)) if i not in slot_ids and i not in special]
    nearest = nearest_tokens(words_np.mean(axis=0), table[keep], pipe.tokenizer.convert_ids_to_tokens(keep), k=3, names=names)
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
