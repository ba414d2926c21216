"""Do raw joint-attention maps and output-space concept maps land on what they name? Writes
benchmarks/results/transformer_localisation.json.

On the ShapesWorld transformer (SD3-style joint attention), generated from held-out captions,
DAAM's protocol (min-max normalise, threshold 0.4, IoU against the colour segmentation of the
generated image) for colour, shape and background words, with
- raw maps: the image queries' attention on the word's text keys (softmax over all keys);
- concept maps (ConceptAttention): the colour, shape and background names as concepts, one-way
  through every joint block, scored in attention-output space, softmax over the concepts (and,
  as a variant, the raw scores without the softmax);
- concepts not in the prompt: one-object captions with the shape word left out ("a large red
  on a gray background"); the drawn shape is named by the shipped classifier, and its concept
  map is scored against the drawn object (raw maps have no key for a word that is not there).
The UNet model's raw figures (benchmarks/results/attention_localisation.json: same captions,
seed and protocol, its finest layers) stand beside them.

    python benchmarks/transformer_localisation.py [--n 128] [--absent 64] [--steps 25]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import workbench
from workbench.capture import trace
from workbench.files import atomic_path
from workbench.metrics import thresholded_iou
from workbench.pipelines.loading import load_pipeline
from workbench.shapesworld import parse_caption, sample_scenes
from workbench.shapesworld.models.classifier import load_classifier
from workbench.shapesworld.models.pipeline import DEFAULT_GUIDANCE_SCALE
from workbench.shapesworld.segmentation import BACKGROUND_LABEL, object_masks_by_color, segment_by_palette
from workbench.shapesworld.vocabulary import BACKGROUNDS, COLORS, SHAPES

RESULTS = Path(__file__).parent / "results"
CONCEPTS = [*COLORS, *SHAPES, *BACKGROUNDS]  # 13 concepts, within the model's 20 text tokens


def targets(caption: str, image: np.ndarray) -> list[tuple[str, str, int, np.ndarray, np.ndarray]]:
    """(role, word, occurrence, the mask of this occurrence's object, the union of the masks of
    every object the word names) for each drawn object's colour and shape and the background."""
    factors = parse_caption(caption)
    labels = segment_by_palette(image)
    masks = object_masks_by_color(labels, [o.color for o in factors.objects])
    named: dict[str, list[np.ndarray]] = defaultdict(list)
    for obj, mask in zip(factors.objects, masks):
        if mask is not None:
            named[obj.color].append(mask)
            named[obj.shape].append(mask)
    seen: dict[str, int] = defaultdict(int)
    found = []
    for obj, mask in zip(factors.objects, masks):
        for role, word in (("color", obj.color), ("shape", obj.shape)):
            occurrence = seen[word]
            seen[word] += 1
            if mask is not None:
                found.append((role, word, occurrence, mask, np.any(named[word], axis=0)))
    background = labels == BACKGROUND_LABEL
    found.append(("background", factors.background, 0, background, background))
    return found


GROUPS = [list(COLORS), list(SHAPES), list(BACKGROUNDS)]  # concepts that name the same factor


def within_factors(scores):
    """Concept maps with the softmax taken among the concepts of each factor (colours compete
    with colours, shapes with shapes), from the raw scores (rows, concept, y, x) per layer."""
    index = [[CONCEPTS.index(c) for c in group] for group in GROUPS]
    maps = {}
    for path, values in scores.maps.items():
        out = torch.empty_like(values)
        for group in index:
            out[:, group] = values[:, group].softmax(dim=1)
        maps[path] = out
    return dataclasses.replace(scores, maps=maps, _resampled={})


def generate(pipe, captions: list[str], args, generator) -> tuple[np.ndarray, object, object, object]:
    """Images, raw maps, concept maps (softmax over the concepts) and concept scores (no softmax)."""
    with trace(pipe, layers="all", concepts=CONCEPTS) as tr:
        images = pipe(captions, num_inference_steps=args.steps, guidance_scale=args.guidance, generator=generator, output_type="np").images
    return images, tr.attention_maps(), tr.concept_maps(), tr.concept_maps(softmax=False)


def shifted(scores):
    """Raw concept scores (dot products, of any sign) moved to start at 0; DAAM's min-max
    normalisation, which the IoU applies next, is unchanged by the shift."""
    return scores - scores.min()


def without_shape(caption: str) -> str:
    """"a large red circle on a gray background" -> "a large red on a gray background"."""
    return " ".join(word for word in caption.split() if word not in SHAPES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128, help="held-out captions (one and two objects)")
    parser.add_argument("--absent", type=int, default=64, help="one-object captions without their shape word")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE_SCALE)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pipeline", default="shapes-transformer")
    parser.add_argument("--out", type=Path, default=RESULTS / "transformer_localisation.json")
    args = parser.parse_args()

    pipe = load_pipeline(args.pipeline)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(args.seed)
    tic = time.perf_counter()
    scores: dict = defaultdict(lambda: defaultdict(list))  # maps kind -> role -> IoUs
    by_block: dict = defaultdict(lambda: defaultdict(list))
    captions = [s.caption for s in sample_scenes(args.n, seed=args.seed, split="test")]
    for start in tqdm(range(0, len(captions), args.batch), desc="in the prompt"):
        batch = captions[start : start + args.batch]
        images, raw, concepts, unnormalised = generate(pipe, batch, args, generator)
        grouped = within_factors(unnormalised)
        for p, (caption, image) in enumerate(zip(batch, images)):
            for role, word, occurrence, mask, union in targets(caption, image):
                scores["raw"][role].append(thresholded_iou(raw.word(word, prompt=p, occurrence=occurrence, size=mask.shape), mask))
                scores["output"][role].append(thresholded_iou(concepts.word(word, prompt=p, size=mask.shape), union))
                scores["output, no softmax"][role].append(thresholded_iou(shifted(unnormalised.word(word, prompt=p, size=mask.shape)), union))
                scores["output, softmax within the factor"][role].append(thresholded_iou(grouped.word(word, prompt=p, size=mask.shape), union))
                for layer in concepts.layers:
                    by_block[f"raw {layer.short}"][role].append(
                        thresholded_iou(raw.word(word, prompt=p, occurrence=occurrence, layers=layer.short, size=mask.shape), mask))
                    by_block[f"output {layer.short}"][role].append(
                        thresholded_iou(concepts.word(word, prompt=p, layers=layer.short, size=mask.shape), union))

    classifier = load_classifier()
    absent_scenes = sample_scenes(args.absent, seed=args.seed + 1, split="test", n_objects=1)
    absent = [without_shape(s.caption) for s in absent_scenes]
    drawn_shapes: list[str] = []
    for start in tqdm(range(0, len(absent), args.batch), desc="not in the prompt"):
        batch = absent[start : start + args.batch]
        images, _, concepts, _ = generate(pipe, batch, args, generator)
        for p, (caption, image) in enumerate(zip(batch, images)):
            factors = parse_caption(absent_scenes[start + p].caption)
            mask = object_masks_by_color(segment_by_palette(image), [factors.objects[0].color])[0]
            if mask is None:
                continue
            with torch.no_grad():
                tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
                logits = classifier(tensor, torch.from_numpy(mask)[None].float()).logits["shape"]
            shape = classifier.heads["shape"][int(logits.argmax())]
            drawn_shapes.append(shape)
            scores["output, not in the prompt"]["shape"].append(thresholded_iou(concepts.word(shape, prompt=p, size=mask.shape), mask))
            scores["output, not in the prompt"]["color (in the prompt)"].append(
                thresholded_iou(concepts.word(factors.objects[0].color, prompt=p, size=mask.shape), mask))

    mean = lambda values: float(np.mean(values)) if values else float("nan")  # noqa: E731
    summary = {kind: {role: mean(v) for role, v in roles.items()} for kind, roles in scores.items()}
    unet_file = RESULTS / "attention_localisation.json"
    unet = json.loads(unet_file.read_text()) if unet_file.exists() else {}
    raw, output = summary["raw"], summary["output"]
    result = {
        "raw_miou_color_words": raw["color"],
        "raw_miou_shape_words": raw["shape"],
        "raw_miou_background_word": raw["background"],
        "concept_miou_color_words": output["color"],
        "concept_miou_shape_words": output["shape"],
        "concept_miou_background_word": output["background"],
        "concept_miou_shape_not_in_prompt": summary.get("output, not in the prompt", {}).get("shape", float("nan")),
        "concept_minus_raw": {role: output[role] - raw[role] for role in ("color", "shape", "background")},
        "concept_scores_without_softmax": summary["output, no softmax"],
        "concept_softmax_within_factor": summary["output, softmax within the factor"],
        "unet_raw": {"color": unet.get("miou_color_words"), "shape": unet.get("miou_shape_words"),
                     "background": unet.get("miou_background_word"), "layers": unet.get("headline_layers")},
        "per_block": {name: {role: mean(v) for role, v in roles.items()} for name, roles in by_block.items()},
        "summary": summary,
        "n_images": len(captions),
        "n_images_not_in_prompt": len(absent),
        "n_scored": {kind: {role: len(v) for role, v in roles.items()} for kind, roles in scores.items()},
        "drawn_shapes_not_in_prompt": {shape: drawn_shapes.count(shape) for shape in SHAPES},
        "concepts": CONCEPTS,
        "protocol": "DAAM: min-max normalise, threshold 0.4, IoU against the colour segmentation of the generated image; "
                    "raw maps per word occurrence against its object, concept maps (one per concept) against every object "
                    "the concept names; every joint block averaged",
        "settings": {**vars(args), "out": str(args.out)},
        "seconds": round(time.perf_counter() - tic, 1),
        "versions": {"workbench": workbench.__version__, "torch": torch.__version__},
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k.endswith(("words", "word", "prompt")) or k in ("unet_raw", "n_images")}, indent=1))


if __name__ == "__main__":
    main()
