"""What a fine-tune, a LoRA, learned words or an erasure changed: two pipelines compared word by
word on the same prompts and seeds.

For each word of each prompt:
- heat maps: both models generate the prompts with the same seed while traced; the overlap of
  the word's two heat maps as distributions (`metrics.distribution_overlap`: 1 the same map, 0
  disjoint), and, where regions are known, the mass that moved
  between regions (half the summed change of the word's share on each region, by region name);
- text-encoder output: the word's hidden states (mean over its token slots) from each model's
  own `encode_prompt`: cosine and norm ratio (other / base);
and for each distinct word, its token embedding in each model's (first) text encoder (mean over
its tokens): norms, cosine, and the nearest vocabulary tokens of each.

Pipelines of different architectures or tokenizers are compared where they can be: what differs,
and what was therefore not compared, is listed in `ModelDiff.differences`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..capture import AttentionMaps
from ..concepts.pipeline_io import encode_prompts
from ..metrics import distribution_overlap, mass_inside, nearest_tokens
from .attention import analyse_attention
from .regions import RegionSource

WORD_COLUMNS = ["prompt", "word", "occurrence", "heat_overlap", "mass_moved", "encoder_cosine", "encoder_norm_ratio"]
EMBEDDING_COLUMNS = ["word", "tokens_base", "tokens_other", "norm_base", "norm_other", "cosine", "nearest_base", "nearest_other"]


@dataclass
class ModelDiff:
    """Two models compared on the same prompts and seed.

    names: (base, other); words: one row per prompt word (WORD_COLUMNS; NaN where a measure
    could not be taken); embeddings: one row per distinct word (EMBEDDING_COLUMNS); images:
    name -> (prompts, y, x, 3) uint8; maps: name -> the traced maps; differences: what differs
    between the two pipelines and what was therefore not compared.
    """

    names: tuple[str, str]
    words: pd.DataFrame
    embeddings: pd.DataFrame
    images: dict[str, np.ndarray]
    maps: dict[str, AttentionMaps]
    differences: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        return self.words


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


IGNORED = {"transformers_version", "name_or_path", "architectures"}  # bookkeeping, not the model


def _config(module) -> dict:
    """A component's configuration as a plain dict (diffusers' FrozenDict or transformers' config)."""
    config = module.config
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def _differences(base, other) -> list[str]:
    found = []
    if type(base).__name__ != type(other).__name__:
        found.append(f"pipelines: {type(base).__name__} vs {type(other).__name__}")
    for name in ("unet", "transformer", "text_encoder"):
        a, b = getattr(base, name, None), getattr(other, name, None)
        if (a is None) != (b is None):
            found.append(f"{name}: only in {'the base' if a is not None else 'the other'} model")
            continue
        if a is None or not hasattr(a, "config") or not hasattr(b, "config"):
            continue
        ca, cb = _config(a), _config(b)
        changed = [k for k in sorted(set(ca) | set(cb)) if not str(k).startswith("_") and k not in IGNORED and ca.get(k) != cb.get(k)]
        if changed:
            found.append(f"{name} config differs in {', '.join(changed[:6])}")
    vocab_a, vocab_b = base.tokenizer.get_vocab(), other.tokenizer.get_vocab()
    if vocab_a != vocab_b:
        added = sorted(set(vocab_b) - set(vocab_a))
        removed = sorted(set(vocab_a) - set(vocab_b))
        found.append("tokenizers differ" + (f": the other adds {', '.join(added[:5])}" if added else "")
                     + (f"; the base alone has {', '.join(removed[:5])}" if removed else ""))
    return found


def _slot_states(pipe, prompts: list[str], maps: AttentionMaps) -> dict[tuple[int, str, int], torch.Tensor]:
    """(prompt, word, occurrence) -> the word's text-encoder output, mean over its token slots."""
    with torch.no_grad():
        states = encode_prompts(pipe, prompts).states.float().cpu()
    found = {}
    for p, spans in enumerate(maps.tokens.words):
        for span in spans:
            slots = [s for s in span.tokens if s < states.shape[1]]
            if slots:
                found[(p, span.word, span.occurrence)] = states[p, slots].mean(0)
    return found


def _token_embedding(pipe, word: str) -> tuple[list[int], torch.Tensor | None]:
    ids = pipe.tokenizer(word, add_special_tokens=False).input_ids
    table = pipe.text_encoder.get_input_embeddings().weight.detach().float().cpu()
    ids = [i for i in ids if i < len(table)]
    return ids, (table[ids].mean(0) if ids else None)


def _nearest(pipe, vector: torch.Tensor, exclude: list[int], k: int = 3) -> str:
    table = pipe.text_encoder.get_input_embeddings().weight.detach().float().cpu().numpy()
    keep = [i for i in range(len(table)) if i not in set(exclude) | set(pipe.tokenizer.all_special_ids)]
    names = pipe.tokenizer.convert_ids_to_tokens(keep)
    frame = nearest_tokens(vector.numpy()[None], table[keep], names, k=k)
    return ", ".join(frame.token)


def _region_shares(maps: AttentionMaps, image: np.ndarray, prompt: int, heat: np.ndarray, regions: RegionSource | None) -> dict[str, float] | None:
    found = regions(prompt, maps, image) if regions is not None else None
    if found is None:
        return None
    return {name: float(mass_inside(heat, mask)) for name, mask in found.masks.items() if mask is not None}


def compare_models(
    base, other, prompts: Sequence[str], names: tuple[str, str] = ("base", "other"), steps: int = 20,
    guidance_scale: float | None = None, seed: int = 0, regions: RegionSource | None = None,
) -> ModelDiff:
    """Compare `other` with `base` word by word (see the module docstring).

    Args:
        base, other: the two pipelines (e.g. a base model and its fine-tune, the same pipeline
            with and without a LoRA, before and after an erasure).
        prompts: the prompts both generate, as written (learned words by name).
        names: what to call the two in tables and figures.
        steps, guidance_scale, seed: the generation of both (guidance: each pipeline's own default).
        regions: where each prompt's regions are (a mask folder, ShapesWorld's captions), for
            the mass moved between regions.

    Returns:
        A ModelDiff; `.to_frame()` is the per-word table.
    """
    prompts = list(prompts)
    if not prompts:
        raise ValueError("compare_models needs at least one prompt")
    differences = _differences(base, other)
    runs = {name: analyse_attention(pipe, prompts, steps=steps, guidance_scale=guidance_scale, seed=seed)
            for name, pipe in zip(names, (base, other))}
    maps = {name: run.maps for name, run in runs.items()}
    states = {}
    for name, pipe in zip(names, (base, other)):
        states[name] = _slot_states(pipe, prompts, maps[name])
    widths = {name: next(iter(s.values())).shape[-1] for name, s in states.items() if s}
    compare_states = len(set(widths.values())) == 1
    if not compare_states:
        differences.append(f"text-encoder outputs not compared: widths {widths[names[0]]} and {widths[names[1]]}")
    rows = []
    for p in range(len(prompts)):
        spans_a = {(s.word, s.occurrence) for s in maps[names[0]].tokens.words[p] if s.tokens}
        spans_b = {(s.word, s.occurrence) for s in maps[names[1]].tokens.words[p] if s.tokens}
        for word, occurrence in [k for k in dict.fromkeys((s.word, s.occurrence) for s in maps[names[0]].tokens.words[p]) if k in spans_a & spans_b]:
            heat = [runs[n].heat_map(word, prompt=p, occurrence=occurrence) for n in names]
            if heat[0].shape != heat[1].shape:
                heat[1] = torch.nn.functional.interpolate(torch.from_numpy(heat[1])[None, None], size=heat[0].shape, mode="bilinear")[0, 0].numpy()
            shares = [_region_shares(maps[n], runs[n].images[p], p, h, regions) for n, h in zip(names, heat)]
            common = sorted(set(shares[0] or {}) & set(shares[1] or {}))
            moved = 0.5 * sum(abs(shares[0][r] - shares[1][r]) for r in common) if common else np.nan
            key = (p, word, occurrence)
            a, b = states[names[0]].get(key), states[names[1]].get(key)
            same = compare_states and a is not None and b is not None
            rows.append({"prompt": p, "word": word, "occurrence": occurrence, "heat_overlap": float(distribution_overlap(heat[0], heat[1])),
                         "mass_moved": moved, "encoder_cosine": _cosine(a, b) if same else np.nan,
                         "encoder_norm_ratio": float(b.norm() / a.norm()) if same and a.norm() > 0 else np.nan})
    embeddings = []
    for word in dict.fromkeys(r["word"] for r in rows):
        (ids_a, e_a), (ids_b, e_b) = _token_embedding(base, word), _token_embedding(other, word)
        same = e_a is not None and e_b is not None and e_a.shape == e_b.shape
        embeddings.append({
            "word": word, "tokens_base": len(ids_a), "tokens_other": len(ids_b),
            "norm_base": float(e_a.norm()) if e_a is not None else np.nan, "norm_other": float(e_b.norm()) if e_b is not None else np.nan,
            "cosine": _cosine(e_a, e_b) if same else np.nan,
            "nearest_base": _nearest(base, e_a, ids_a) if e_a is not None else "", "nearest_other": _nearest(other, e_b, ids_b) if e_b is not None else "",
        })
    return ModelDiff(names=tuple(names), words=pd.DataFrame(rows, columns=WORD_COLUMNS), embeddings=pd.DataFrame(embeddings, columns=EMBEDDING_COLUMNS),
                     images={n: runs[n].images for n in names}, maps=maps, differences=differences)


CONCEPT_COLUMNS = ["concept", "layer", "cav_accuracy_base", "cav_accuracy_other", "cav_cosine", "tcav_base", "tcav_other",
                   "p_value_base", "p_value_other", "significant_base", "significant_other"]


def compare_concepts(base, other, target, inputs, concepts, random, layers: Sequence[str], timestep: int = 400, seed: int = 0) -> pd.DataFrame:
    """Is a concept still linearly readable at each layer, and does it still drive the target?
    TCAV on both models with the same concept sets, random sets, inputs and seeds.

    Returns:
        One row per (concept, layer) (CONCEPT_COLUMNS): each model's held-out CAV accuracy (mean
        over the random sets), the cosine between the two models' CAVs (mean over the random
        sets, each CAV against the same random set), each model's TCAV score, p-value and
        Bonferroni significance.

    Raises:
        ValueError: a layer one of the models lacks (names it), or what `run_tcav` refuses.
    """
    from ..concepts import run_tcav

    reports = [run_tcav(pipe, target, inputs, concepts, random, layers, timestep=timestep, seed=seed) for pipe in (base, other)]
    rows = []
    for a in reports[0]:
        b = reports[1].result(a.concept, a.layer)
        same_width = a.cavs is not None and b.cavs is not None and a.cavs.shape == b.cavs.shape
        cosine = float(np.mean(np.sum(a.cavs * b.cavs, axis=1))) if same_width else np.nan  # unit CAVs, paired by random set
        rows.append({"concept": a.concept, "layer": a.layer, "cav_accuracy_base": float(a.accuracies.mean()),
                     "cav_accuracy_other": float(b.accuracies.mean()), "cav_cosine": cosine, "tcav_base": a.score, "tcav_other": b.score,
                     "p_value_base": a.p_value, "p_value_other": b.p_value, "significant_base": reports[0].significant(a),
                     "significant_other": reports[1].significant(b)})
    return pd.DataFrame(rows, columns=CONCEPT_COLUMNS)


def judged_generations(pipe, prompts: Sequence[str], detector, steps: int, generator: torch.Generator,
                       options: dict) -> tuple[np.ndarray, np.ndarray]:
    """`prompts` generated in one call (as the pipeline must be given them) and judged:
    (images (n, y, x, 3) float in [0, 1], verdicts (n,) bool).

    Raises:
        ValueError: a detector that does not return one bool per image.
    """
    from .generation import pipeline_prompts

    images = np.asarray(pipe(pipeline_prompts(pipe, list(prompts)), num_inference_steps=steps, generator=generator, output_type="np",
                             **options).images)
    verdicts = np.asarray(detector(images))
    if verdicts.shape != (len(prompts),):
        raise ValueError(f"the detector returned shape {verdicts.shape}; expected one bool per image, ({len(prompts)},)")
    return images, verdicts.astype(bool)


def presence(pipe, prompts: Sequence[str], detector, images_per_prompt: int = 1, steps: int = 20, guidance_scale: float | None = None,
             seed: int = 0, batch_size: int = 8) -> pd.DataFrame:
    """How often a concept is present in what the model draws: each prompt generated
    `images_per_prompt` times (seeded), each image judged by `detector`.

    Args:
        detector: images (n, y, x, 3) float in [0, 1] -> (n,) bools (a user's classifier, or
            ShapesWorld's `shapesworld.color_present("red")`).

    Returns:
        One row per prompt: prompt, n, present (count), rate, low, high (95% Wilson interval).

    Raises:
        ValueError: a detector that does not return one bool per image.
    """
    from ..metrics import wilson_interval
    from .generation import generation_options

    options = generation_options(pipe, guidance_scale=guidance_scale)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for prompt in prompts:
        found = []
        for start in range(0, images_per_prompt, batch_size):
            n = min(batch_size, images_per_prompt - start)
            found.extend(bool(v) for v in judged_generations(pipe, [prompt] * n, detector, steps, generator, options)[1])
        low, high = wilson_interval(sum(found), len(found))
        rows.append({"prompt": prompt, "n": len(found), "present": sum(found), "rate": sum(found) / len(found), "low": low, "high": high})
    return pd.DataFrame(rows, columns=["prompt", "n", "present", "rate", "low", "high"])
