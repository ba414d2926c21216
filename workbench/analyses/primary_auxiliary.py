"""Primary versus auxiliary words: which word of an ELITE-style encoder carries what.

For a set of ShapesWorld images: each word's norm, the words' mutual cosine similarity and
nearest vocabulary tokens; where each word attends when the model redraws the image from
"a S*" (attention mass on the drawn object versus the background: spatial leakage); which
factors a linear probe reads from each word (informational leakage); and the disentanglement
of all words together against the factors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..capture import trace
from ..metrics import cosine_similarity_matrix, dci_fast, infomec, mass_inside, mig, nearest_tokens, probe_leakage
from ..metrics.representations import ProbeLeakage
from ..models.elite import injected_words
from ..models.shapes_pipeline import DEFAULT_GUIDANCE_SCALE
from ..models.word_encoder import WordEncoder
from ..world.scenes import Scene, scenes_to_tensor
from ..world.segmentation import BACKGROUND_LABEL, segment_by_palette

POSITION_BINS = 3  # x and y become left/centre/right and top/middle/bottom for probing


def word_names(n_words: int) -> list[str]:
    """w0 (primary), w1..wk (auxiliary)."""
    return [f"w{i}" for i in range(n_words)]


def scene_factors(scenes: Sequence[Scene]) -> pd.DataFrame:
    """Factor labels of one-object scenes, positions binned, one row per image."""
    rows = []
    for scene in scenes:
        if len(scene.objects) != 1:
            raise ValueError("the primary/auxiliary comparison expects one-object scenes")
        obj = scene.objects[0]
        cell = scene.image_size / POSITION_BINS
        rows.append({"shape": obj.shape, "color": obj.color, "size": obj.size, "background": scene.background,
                     "x": int(obj.x // cell), "y": int(obj.y // cell)})
    return pd.DataFrame(rows)


@dataclass
class WordComparison:
    """What each learned word carries; arrays are indexed by image, then word (w0 first)."""

    words: np.ndarray  # (images, n_words, width)
    norms: np.ndarray  # (images, n_words)
    cosine: np.ndarray  # (n_words, n_words), mean over images
    nearest: pd.DataFrame  # query word, rank, token, similarity (words averaged over images)
    object_mass: np.ndarray  # (images, n_words): fraction of the word's attention on the drawn object
    probes: ProbeLeakage
    disentanglement: dict[str, float]
    generated: np.ndarray  # (images, y, x, 3) what the model drew from "a S*"

    @property
    def names(self) -> list[str]:
        return word_names(self.words.shape[1])

    def to_frame(self) -> pd.DataFrame:
        """Tidy per image and word: image, word, norm, object_mass."""
        n_images, n_words = self.norms.shape
        return pd.DataFrame({
            "image": np.repeat(np.arange(n_images), n_words),
            "word": self.names * n_images,
            "norm": self.norms.ravel(),
            "object_mass": self.object_mass.ravel(),
        })


@torch.no_grad()
def compare_words(
    pipe,
    encoder: WordEncoder,
    scenes: Sequence[Scene],
    template: str = "a S*",
    placeholder: str = "S*",
    steps: int = 25,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    batch_size: int = 32,
    seed: int = 0,
) -> WordComparison:
    """Run the comparison on one-object scenes (see the module docstring).

    Raises:
        ValueError: multi-object scenes, a template without the placeholder, too few images
            to probe (at least 20).
    """
    if template.count(placeholder) != 1:
        raise ValueError(f"template {template!r} must contain the placeholder {placeholder!r} once, e.g. 'a {placeholder}'")
    if len(scenes) < 20:
        raise ValueError(f"compare_words needs at least 20 images to fit and test probes, got {len(scenes)}")
    factors = scene_factors(scenes)
    encoder = encoder.eval()
    generator = torch.Generator().manual_seed(seed)
    all_words, generated, masses = [], [], []
    for start in tqdm(range(0, len(scenes), batch_size), desc="words -> images"):
        batch = list(scenes[start : start + batch_size])
        words = encoder((scenes_to_tensor(batch) + 1) / 2)
        with injected_words(pipe, words, placeholder) as slot_ids, trace(pipe, layers="all") as tr:
            images = pipe([template] * len(batch), num_inference_steps=steps, guidance_scale=guidance_scale,
                          generator=generator, output_type="np").images
        maps = tr.attention_maps()
        slots = maps.word_span(placeholder, prompt=0).tokens
        for b, image in enumerate(images):
            drawn = segment_by_palette(image) != BACKGROUND_LABEL
            masses.append([mass_inside(maps.token(slot, prompt=b).numpy(), drawn) for slot in slots])
        all_words.append(words.numpy())
        generated.append(images)
    words = np.concatenate(all_words)
    names = word_names(words.shape[1])
    # the vocabulary without the placeholder's own slots (no embedding of their own) or special tokens
    table = pipe.text_encoder.get_input_embeddings().weight.detach().numpy()
    special = set(pipe.tokenizer.all_special_ids)
    keep = [i for i in range(len(table)) if i not in slot_ids and i not in special]
    vocabulary, tokens = table[keep], pipe.tokenizer.convert_ids_to_tokens(keep)
    nearest = nearest_tokens(words.mean(axis=0), vocabulary, tokens, k=3, names=names)
    nearest["token_id"] = [keep[i] for i in nearest.token_id]
    probes = probe_leakage({name: words[:, i] for i, name in enumerate(names)}, factors)
    codes = words.reshape(len(words), -1)
    labels = np.stack([pd.factorize(factors[c])[0] for c in factors.columns], axis=1)
    fast = dci_fast(codes, labels, seed=seed)
    info = infomec(codes, labels, seed=seed)
    return WordComparison(
        words=words,
        norms=np.linalg.norm(words, axis=-1),
        cosine=np.mean([cosine_similarity_matrix(w) for w in words], axis=0),
        nearest=nearest,
        object_mass=np.asarray(masses),
        probes=probes,
        disentanglement={"mig": mig(codes, labels), "dci_disentanglement": fast.disentanglement, "dci_completeness": fast.completeness,
                         "dci_informativeness": fast.informativeness, "infom": info.infom, "infoe": info.infoe, "infoc": info.infoc},
        generated=np.concatenate(generated),
    )
