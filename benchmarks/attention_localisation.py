"""Do word heat maps land on the objects they name? Writes benchmarks/results/attention_localisation.json.

DAAM's protocol on ShapesWorld: generate from held-out captions while tracing cross-attention,
min-max normalise each word's heat map, threshold at 0.4 and take the IoU with the mask of
what was actually generated (the generated image segmented by colour against the palette).
Only objects whose colour was drawn are scored. The headline numbers use the layers at the
finest captured resolution (DAAM also leaves the coarsest maps out); every layer group and
resolution is reported too.

    python benchmarks/attention_localisation.py [--n 128] [--steps 25]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import workbench
from workbench.capture import cluster_self_attention, trace, unsupervised_masks
from workbench.files import atomic_path
from workbench.metrics import iou, thresholded_iou
from workbench.pipelines.loading import load_pipeline
from workbench.shapesworld.models.pipeline import DEFAULT_GUIDANCE_SCALE
from workbench.shapesworld import parse_caption, sample_scenes
from workbench.shapesworld.segmentation import BACKGROUND_LABEL, object_masks_by_color, segment_by_palette

RESULT = Path(__file__).parent / "results" / "attention_localisation.json"
UNSUPERVISED_CLUSTERS = 4  # up to two objects, background, and a spare for object borders


def layer_sets(maps) -> dict[str, list[str]]:
    """Named sets of layer short names: each block group, each resolution, and all."""
    sets: dict[str, list[str]] = defaultdict(list)
    for layer in maps.select(kind="cross"):
        side = maps.maps[layer.path].shape[-1]
        sets[layer.group].append(layer.short)
        sets[f"{side}x{side}"].append(layer.short)
        sets["all"].append(layer.short)
    return dict(sets)


def score_batch(maps, images: np.ndarray, captions: list[str], sets: dict[str, list[str]], scores: dict, by_count: dict) -> None:
    for p, (image, caption) in enumerate(zip(images, captions)):
        factors = parse_caption(caption)
        labels = segment_by_palette(image)
        masks = object_masks_by_color(labels, [o.color for o in factors.objects])
        seen: dict[str, int] = defaultdict(int)
        targets = []
        for obj, mask in zip(factors.objects, masks):
            for role, word in (("color", obj.color), ("shape", obj.shape)):
                occurrence = seen[word]
                seen[word] += 1
                if mask is not None:
                    targets.append((role, word, occurrence, mask))
        targets.append(("background", factors.background, 0, labels == BACKGROUND_LABEL))
        for name, shorts in sets.items():
            for role, word, occurrence, mask in targets:
                heat = maps.word(word, prompt=p, occurrence=occurrence, layers=shorts, size=mask.shape)
                scores[name][role].append(thresholded_iou(heat, mask))
                by_count[name][f"{len(factors.objects)}_object"][role].append(scores[name][role][-1])
        # Without labels: each drawn object against its best-matching salient cluster, and all
        # drawn objects against the union of the salient clusters; saliency as ConceptExpress
        # (the end token) and by the prompt's words (the default, see capture/localisation.py)
        drawn = [mask for mask in masks if mask is not None]
        clusters = cluster_self_attention(maps, prompt=p, n_clusters=UNSUPERVISED_CLUSTERS)
        for saliency in ("words", "end"):
            found = unsupervised_masks(maps, prompt=p, size=labels.shape, saliency=saliency, clusters=clusters)
            for mask in drawn:
                scores["unsupervised"][saliency].append(max((iou(c, mask) for c in found.masks()), default=0.0))
            if drawn:
                scores["unsupervised"][f"{saliency} foreground"].append(iou(found.foreground(), np.any(drawn, axis=0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE_SCALE)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pipeline", default="shapes", help="the pipeline measured (name or folder)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    pipe = load_pipeline(args.pipeline)
    pipe.set_progress_bar_config(disable=True)
    captions = [s.caption for s in sample_scenes(args.n, seed=args.seed, split="test")]
    generator = torch.Generator().manual_seed(args.seed)
    scores: dict = defaultdict(lambda: defaultdict(list))
    by_count: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    tic = time.perf_counter()
    for start in tqdm(range(0, len(captions), args.batch), desc="trace + score"):
        batch = captions[start : start + args.batch]
        with trace(pipe, layers="all", self_layers="all") as tr:
            images = pipe(batch, num_inference_steps=args.steps, guidance_scale=args.guidance, generator=generator, output_type="np").images
        maps = tr.attention_maps()
        sets = layer_sets(maps)
        score_batch(maps, images, batch, sets, scores, by_count)
    finest = max((name for name in sets if "x" in name), key=lambda name: int(name.split("x")[0]))
    unsupervised = {name: float(np.mean(v)) for name, v in scores.pop("unsupervised").items()}
    summary = {name: {role: float(np.mean(v)) for role, v in roles.items()} for name, roles in scores.items()}
    result = {
        "miou_color_words": summary[finest]["color"],
        "miou_shape_words": summary[finest]["shape"],
        "miou_background_word": summary[finest]["background"],
        "headline_layers": f"{finest} ({', '.join(sets[finest])})",
        "per_layer_group": summary,
        "headline_by_object_count": {count: {role: float(np.mean(v)) for role, v in roles.items()}
                                     for count, roles in sorted(by_count[finest].items())},
        "n_images": len(captions),
        "n_scored": {role: len(v) for role, v in scores[finest].items()},
        "unsupervised_miou": unsupervised["words"],
        "unsupervised": unsupervised,
        "unsupervised_protocol": f"k-means (k={UNSUPERVISED_CLUSTERS}) on the finest self-attention, clusters kept where the "
                                 "prompt's words (default) or the end token (ConceptExpress) attend above their mean; "
                                 "IoU of each drawn object with its best salient cluster, and of all drawn objects "
                                 "with the union of the salient clusters (foreground)",
        "protocol": "DAAM: min-max normalise, threshold 0.4, IoU against the colour segmentation of the generated image",
        "settings": {**vars(args), "out": str(args.out)},
        "seconds": round(time.perf_counter() - tic, 1),
        "versions": {"workbench": workbench.__version__, "torch": torch.__version__},
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("miou_color_words", "miou_shape_words", "miou_background_word", "headline_layers", "n_images")}, indent=1))


if __name__ == "__main__":
    main()
