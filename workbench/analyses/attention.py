"""Where does each word attend, and how much of it leaks onto other objects or the background?

Generate a batch of prompts while tracing cross-attention, then score each word's heat map.
For ShapesWorld captions the regions are known: the generated image is segmented by the
palette into each named object (by its colour) and the background, so every word gets
- leakage: the fraction of its attention mass on each region (TokenCompose's mass inside),
- localisation: DAAM's IoU of its thresholded heat map with the region it names.
For any other prompt (a user's Stable Diffusion), only the word x word overlap is scored.

Heat maps average the layers at the finest captured resolution. DAAM 0.2 averages every
layer but the coarsest (the 64, 32 and 16 px layers of SD at 512 px, dropping 8x8); the
workbench keeps only the finest because on ShapesWorld each coarser level measurably lowered
localisation (benchmarks/results/attention_localisation.json: colour words 0.31 at 16x16
against 0.12 with every layer). `maps.word(..., layers=...)` averages any other set.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..capture import AttentionMaps, trace
from ..metrics import mass_inside, overlap_matrix, soft_iou, threshold_iou
from ..models.shapes_pipeline import DEFAULT_GUIDANCE_SCALE
from ..world.captions import CaptionError, CaptionFactors, parse_caption, word_roles
from ..world.segmentation import BACKGROUND_LABEL, object_masks_by_color, segment_by_palette


@dataclass
class AttentionAnalysis:
    """The traced generation and its scores (tidy frames, one row per prompt x word [x region]).

    maps: the captured attention; images: (prompts, y, x, 3) uint8; heat_layers: the layer
    short names averaged into the heat maps; leakage: prompt, word, occurrence, role, object,
    region, mass; localisation: prompt, word, occurrence, role, object, iou, mass_inside;
    overlap: prompt, word_a, word_b, soft_iou.
    """

    maps: AttentionMaps
    images: np.ndarray
    heat_layers: list[str]
    leakage: pd.DataFrame
    localisation: pd.DataFrame
    overlap: pd.DataFrame

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


def _word_roles(caption: str) -> list[tuple[str, int, str, int | None]]:
    """(word, occurrence, role, object index or None for the background) for each factor word."""
    seen: dict[str, int] = defaultdict(int)
    roles = []
    for named in filter(None, word_roles(caption)):
        roles.append((named.word, seen[named.word], named.role, named.obj))
        seen[named.word] += 1
    return roles


def _regions(image: np.ndarray, factors: CaptionFactors) -> dict[str, np.ndarray | None]:
    """Each named object's drawn pixels (None if its colour was not drawn) and the background."""
    labels = segment_by_palette(image)
    masks = object_masks_by_color(labels, [o.color for o in factors.objects])
    regions = {f"object {i + 1} ({o.color} {o.shape})": m for i, (o, m) in enumerate(zip(factors.objects, masks))}
    regions["background"] = labels == BACKGROUND_LABEL
    return regions


def _score_prompt(analysis_rows: dict[str, list], maps: AttentionMaps, layers: list[str], prompt: int, image: np.ndarray) -> None:
    spans = [s for s in maps.tokens.words[prompt] if s.tokens]
    heat = {(s.word, s.occurrence): maps.word(s.word, prompt=prompt, occurrence=s.occurrence, layers=layers).numpy() for s in spans}
    keys = list(heat)
    matrix = overlap_matrix(np.stack([heat[k] for k in keys]), metric=soft_iou)
    for i, a in enumerate(keys):
        for j, b in enumerate(keys):
            if i < j:
                analysis_rows["overlap"].append({"prompt": prompt, "word_a": a[0], "word_b": b[0], "soft_iou": float(matrix[i, j])})
    try:
        factors = parse_caption(maps.tokens.texts[prompt])
    except CaptionError:
        return  # not a ShapesWorld caption: no known regions
    regions = _regions(image, factors)
    names = list(regions)
    for word, occurrence, role, obj in _word_roles(maps.tokens.texts[prompt]):
        if (word, occurrence) not in heat:
            continue
        h = heat[(word, occurrence)]
        base = {"prompt": prompt, "word": word, "occurrence": occurrence, "role": role, "object": -1 if obj is None else obj}
        for name in names:
            if regions[name] is not None:
                analysis_rows["leakage"].append({**base, "region": name, "mass": float(mass_inside(h, regions[name]))})
        own = regions[names[-1] if obj is None else names[obj]]
        if own is not None:
            analysis_rows["localisation"].append({**base, "iou": threshold_iou(h, own), "mass_inside": float(mass_inside(h, own))})


def analyse_attention(
    pipe,
    prompts: Sequence[str],
    layers: str | Sequence[str] = "all",
    steps: int = 20,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    seed: int = 0,
    per_step: bool = False,
) -> AttentionAnalysis:
    """Generate `prompts` (one batch, seeded) while tracing, then score every word.

    Args:
        pipe: any pipeline `trace` supports (ShapesWorld or Stable Diffusion).
        prompts: the captions; ShapesWorld captions also get leakage and localisation.
        layers: cross-attention layers to capture (selectors as in `trace`).
        steps, guidance_scale, seed: the generation.
        per_step: keep each denoising step's maps (for the step slider of heat-map figures).

    Raises:
        ValueError: no prompts.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("analyse_attention needs at least one prompt")
    generator = torch.Generator().manual_seed(seed)
    with trace(pipe, layers=layers, per_step=per_step) as tr:
        out = pipe(prompts, num_inference_steps=steps, guidance_scale=guidance_scale, generator=generator, output_type="np")
    maps = tr.attention_maps()
    images = (np.asarray(out.images) * 255).round().astype(np.uint8)
    heat_layers = finest_layers(maps)
    rows: dict[str, list] = defaultdict(list)
    for p, image in enumerate(images):
        _score_prompt(rows, maps, heat_layers, p, image)
    columns = {
        "leakage": ["prompt", "word", "occurrence", "role", "object", "region", "mass"],
        "localisation": ["prompt", "word", "occurrence", "role", "object", "iou", "mass_inside"],
        "overlap": ["prompt", "word_a", "word_b", "soft_iou"],
    }
    frames = {name: pd.DataFrame(rows[name], columns=cols) for name, cols in columns.items()}
    return AttentionAnalysis(maps=maps, images=images, heat_layers=heat_layers, **frames)
