"""Where does each word attend, and how much of it leaks onto other regions?

Generate a batch of prompts while tracing cross-attention, then score each word's heat map:
- overlap: soft IoU between every two words' heat maps (any prompt);
- where regions are known (a `RegionSource`: the user's mask folder, or ShapesWorld's
  segmentation of its captions), leakage: the fraction of each word's attention mass on each
  region (TokenCompose's mass inside), with the region's area share beside it (what a uniform
  map would get); and localisation: DAAM's IoU of the thresholded heat map with the region the
  word names. Prompts without regions get overlap only, and the result says why.

Heat maps average the layers at the finest captured resolution. DAAM 0.2 averages every
layer but the coarsest (the 64, 32 and 16 px layers of SD at 512 px, dropping 8x8); the
workbench keeps only the finest because on ShapesWorld each coarser level measurably lowered
localisation (benchmarks/results/attention_localisation.json: colour words 0.31 at 16x16
against 0.12 with every layer). `maps.word(..., layers=...)` averages any other set.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..capture import AttentionMaps, trace
from ..metrics import mass_inside, overlap_matrix, soft_iou, thresholded_iou
from .generation import generation_options, pipeline_prompts
from .regions import RegionSource

COLUMNS = {
    "leakage": ["prompt", "word", "occurrence", "role", "own_region", "region", "area", "mass"],
    "localisation": ["prompt", "word", "occurrence", "role", "region", "area", "iou", "mass_inside"],
    "overlap": ["prompt", "word_a", "occurrence_a", "word_b", "occurrence_b", "soft_iou"],
}


@dataclass
class AttentionAnalysis:
    """The traced generation and its scores (tidy frames, one row per prompt x word [x region]).

    maps: the maps scored (raw attention, or output-space concept maps with maps="output");
    concept_maps: the output-space concept maps when concepts were asked for (else None);
    space: "raw" or "output", which maps were scored; images: (prompts, y, x, 3) uint8; heat_layers: the layer
    short names averaged into the heat maps; leakage: prompt, word, occurrence, role,
    own_region, region, area (the region's share of the image: a uniform map's mass), mass;
    localisation: prompt, word, occurrence, role, region, area, iou, mass_inside; overlap:
    prompt, word_a, occurrence_a, word_b, occurrence_b, soft_iou; regions_note: where the
    regions came from, or why there are none.
    """

    maps: AttentionMaps
    images: np.ndarray
    heat_layers: list[str]
    leakage: pd.DataFrame
    localisation: pd.DataFrame
    overlap: pd.DataFrame
    regions_note: str = ""
    concept_maps: AttentionMaps | None = None
    space: str = "raw"

    def heat_map(self, word: str, prompt: int = 0, occurrence: int = 0) -> np.ndarray:
        """The word's heat map over the heat layers at image size, (y, x)."""
        return self.maps.word(word, prompt=prompt, occurrence=occurrence, layers=self.heat_layers).numpy()

    def to_frame(self) -> pd.DataFrame:
        return self.leakage


def finest_layers(maps: AttentionMaps) -> list[str]:
    """Short names of the captured cross-attention layers at the finest resolution."""
    layers = maps.select(kind="cross")
    side = max(maps.maps[layer.path].shape[-1] for layer in layers)
    return [layer.short for layer in layers if maps.maps[layer.path].shape[-1] == side]


def _score_prompt(rows: dict[str, list], maps: AttentionMaps, layers: list[str], prompt: int, image: np.ndarray,
                  regions: RegionSource | None) -> bool:
    """Append the prompt's overlap (and, with regions, leakage and localisation) rows; returns
    whether the prompt had regions."""
    spans = [s for s in maps.tokens.words[prompt] if s.tokens]
    heat = {(s.word, s.occurrence): maps.word(s.word, prompt=prompt, occurrence=s.occurrence, layers=layers).numpy() for s in spans}
    keys = list(heat)
    if keys:
        matrix = overlap_matrix(np.stack([heat[k] for k in keys]), metric=soft_iou)
        for i, a in enumerate(keys):
            for j, b in enumerate(keys[i + 1:], start=i + 1):
                rows["overlap"].append({"prompt": prompt, "word_a": a[0], "occurrence_a": a[1], "word_b": b[0],
                                        "occurrence_b": b[1], "soft_iou": float(matrix[i, j])})
    found = regions(prompt, maps, image) if regions is not None else None
    if found is None:
        return False
    drawn = {name: mask for name, mask in found.masks.items() if mask is not None}
    for (word, occurrence), (role, own) in found.words.items():
        if (word, occurrence) not in heat:
            continue
        h = heat[(word, occurrence)]
        base = {"prompt": prompt, "word": word, "occurrence": occurrence, "role": role}
        for name, mask in drawn.items():
            rows["leakage"].append({**base, "own_region": own, "region": name, "area": float(mask.mean()), "mass": float(mass_inside(h, mask))})
        if own is not None and own in drawn:
            rows["localisation"].append({**base, "region": own, "area": float(drawn[own].mean()),
                                         "iou": thresholded_iou(h, drawn[own]), "mass_inside": float(mass_inside(h, drawn[own]))})
    return True


def analyse_attention(
    pipe,
    prompts: Sequence[str],
    layers: str | Sequence[str] = "all",
    steps: int = 20,
    guidance_scale: float | None = None,
    seed: int = 0,
    per_step: bool = False,
    regions: RegionSource | None = None,
    negative_prompt: str | Sequence[str] | None = None,
    height: int | None = None,
    width: int | None = None,
    concepts: Sequence[str] | None = None,
    maps: str = "raw",
    **pipeline_options: Any,
) -> AttentionAnalysis:
    """Generate `prompts` (one batch, seeded) while tracing, then score every word.

    Args:
        pipe: any pipeline `trace` supports (ShapesWorld or Stable Diffusion), with any
            learned words already inserted.
        prompts: the prompts, as written.
        layers: cross-attention layers to capture (selectors as in `trace`).
        steps: denoising steps.
        seed: seeds the generation.
        guidance_scale: default the pipeline's own (SD 7.5, SDXL 5.0, ShapesWorld 1.5).
        per_step: keep each denoising step's maps (for the step slider of heat-map figures).
        regions: where each prompt's regions come from (`mask_folder(...)`,
            `UnsupervisedRegions()`, ShapesWorld's `caption_regions`); without them only the
            word overlap is scored.
        negative_prompt: one for every prompt, or one each.
        height: image height, passed to the pipeline when given.
        width: image width, passed to the pipeline when given.
        concepts: words (in the prompts or not) whose concept maps in attention-output space
            to compute as well (ConceptAttention; joint-attention transformers: SD3, Flux, the
            ShapesWorld transformer).
        maps: "raw" scores the prompt words' attention maps; "output" scores the concept maps
            of `concepts` instead (a concept that is a prompt word gets that word's regions).
        pipeline_options: other options of the pipeline's call (e.g. use_resolution_binning=False
            for PixArt and Sana), refused by name where the pipeline does not take them.

    Raises:
        ValueError: no prompts, an option the pipeline does not take, maps="output" without
            concepts, or concepts on a denoiser without joint attention.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("analyse_attention needs at least one prompt")
    if maps not in ("raw", "output"):
        raise ValueError(f'maps must be "raw" or "output", got {maps!r}')
    if maps == "output" and not concepts:
        raise ValueError('maps="output" scores concept maps: name the concepts (concepts=[...])')
    if isinstance(negative_prompt, str):
        negative_prompt = [negative_prompt] * len(prompts)
    options = generation_options(pipe, guidance_scale=guidance_scale, negative_prompt=negative_prompt, height=height, width=width,
                                 **pipeline_options)
    generator = torch.Generator().manual_seed(seed)
    # a region source that reads self-attention (UnsupervisedRegions) says which layers
    self_layers = getattr(regions, "self_layers", None)
    with trace(pipe, layers=layers, per_step=per_step, self_layers=self_layers, concepts=concepts) as tr:
        out = pipe(pipeline_prompts(pipe, prompts), num_inference_steps=steps, generator=generator, output_type="np", **options)
    concept_maps = tr.concept_maps() if concepts else None
    scored = concept_maps if maps == "output" else tr.attention_maps()
    images = (np.asarray(out.images) * 255).round().astype(np.uint8)
    heat_layers = finest_layers(scored)
    rows: dict[str, list] = defaultdict(list)
    with_regions = [_score_prompt(rows, scored, heat_layers, p, image, regions) for p, image in enumerate(images)]
    frames = {name: pd.DataFrame(rows[name], columns=cols) for name, cols in COLUMNS.items()}
    if regions is None:
        note = "no regions: no region source was given (a mask folder, or ShapesWorld captions on the embedded model)"
    elif not any(with_regions):
        note = "no regions: the region source knew none of these prompts"
    else:
        note = f"regions known for {sum(with_regions)} of {len(prompts)} prompt(s)"
    return AttentionAnalysis(maps=scored, images=images, heat_layers=heat_layers, regions_note=note,
                             concept_maps=concept_maps, space=maps, **frames)
