"""Is "red" gone from the ShapesWorld model after few-shot erasure, or only hidden? Writes
benchmarks/results/model_diff.json.

Erases "red" from the embedded model (`workbench world erase`: the text encoder unlearns it from
8 repainted scenes), then measures, base against erased:
- red_presence: the share of generations with red drawn (exact palette segmentation, at least
  12 pixels), from held-out captions naming red, with 95% Wilson intervals; and under attack:
  Ring-A-Bell's red direction (from the base model) added to the erased model's encoding at
  scales 1 and 2;
- the words: compare_models on those captions (the red word's heat-map overlap, text-encoder
  cosine; the other words' for contrast);
- inside the model: compare_concepts for the concept "red objects" (captions naming red against
  random captions) at every text-encoder layer and three UNet blocks, with the classifier's
  red logit as the target: CAV accuracy, CAV cosine and TCAV in each model, and the verdict per
  layer (gone / hidden but readable / still driving);
- the LoRA word: "<pc>" taught as a purple cross (`workbench world teach`), its heat map's DAAM
  IoU against the drawn object;
- seconds: the erasure, and the audit against the bare generations it needs.

    python benchmarks/model_diff.py [--images 4] [--prompts 16]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

import workbench
from workbench.analyses import compare_concepts, compare_models, concept_direction, erasure_verdicts, presence, steered
from workbench.concepts import ConceptSet, sets_from_pool
from workbench.files import atomic_path
from workbench.shapesworld import classifier_target, color_present, sample_scenes
from workbench.shapesworld.training.erasure import ErasureConfig, erase_color

RESULT = Path(__file__).parent / "results" / "model_diff.json"
LAYERS = ["text_encoder.encoder.layers.0", "text_encoder.encoder.layers.1", "unet.down_blocks.1", "unet.mid_block", "unet.up_blocks.1"]


def captions(color: str | None, n: int, seed: int) -> list[str]:
    """Held-out one-object captions, all of `color` (None: any colour but red)."""
    found, k = [], 0
    while len(found) < n:
        for scene in sample_scenes(64, seed=seed + k, n_objects=1, split="test"):
            obj = scene.objects[0]
            if (obj.color == color) if color else obj.color != "red":
                found.append(scene.caption)
        k += 1
    return found[:n]


def taught_word_localisation(n: int) -> dict:
    """Teach "<pc>" (a purple cross) with a LoRA, then its heat map's DAAM IoU against the drawn
    purple object, over n captions naming it."""
    from workbench.analyses import analyse_attention
    from workbench.metrics import thresholded_iou
    from workbench.shapesworld.segmentation import segment_by_palette
    from workbench.shapesworld.training.lora_word import LoraWordConfig, teach_word
    from workbench.shapesworld.vocabulary import BACKGROUNDS, COLORS, SIZES

    pipe = workbench.load_pipeline("shapes")
    pipe.set_progress_bar_config(disable=True)
    summary = teach_word(pipe, LoraWordConfig())
    rng = np.random.default_rng(0)
    prompts = [f"a {rng.choice(list(SIZES))} <pc> on a {rng.choice(list(BACKGROUNDS))} background" for _ in range(n)]
    run = analyse_attention(pipe, prompts, steps=25)
    purple = list(COLORS).index("purple")
    scores, drawn = [], 0
    for p, image in enumerate(run.images):
        mask = segment_by_palette(image) == purple
        if mask.sum() >= 12:
            drawn += 1
            scores.append(thresholded_iou(run.heat_map("<pc>", prompt=p), mask))
    return {"miou_against_the_drawn_object": float(np.mean(scores)) if scores else None, "drawn": drawn, "n": n,
            "teach": {k: summary[k] for k in ("steps", "seconds", "loss_first_10", "loss_last_10")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="generations per caption")
    parser.add_argument("--prompts", type=int, default=16, help="held-out captions naming red")
    args = parser.parse_args()
    base = workbench.load_pipeline("shapes")
    base.set_progress_bar_config(disable=True)
    tic = time.perf_counter()
    erased, summary = erase_color(base, ErasureConfig(color="red"))
    erase_seconds = time.perf_counter() - tic
    red = captions("red", args.prompts, seed=100)
    detector = color_present("red")

    tic = time.perf_counter()
    rates = {name: presence(pipe, red, detector, images_per_prompt=args.images, steps=25) for name, pipe in (("base", base), ("erased", erased))}
    bare_seconds = time.perf_counter() - tic
    totals = {name: (int(frame.present.sum()), int(frame.n.sum())) for name, frame in rates.items()}
    # Ring-A-Bell: the red direction from the base model (the same captions in other colours),
    # added to the erased model's encoding of the red captions
    others = [caption.replace(" red ", f" {color} ") for caption, color in zip(red, ["blue", "green", "yellow", "purple"] * len(red))]
    direction = concept_direction(base, red, others)
    attacks = {}
    for scale in (1.0, 2.0):
        with steered(erased, direction, scale):
            frame = presence(erased, red, detector, images_per_prompt=args.images, steps=25)
        attacks[str(scale)] = (int(frame.present.sum()), int(frame.n.sum()))

    tic = time.perf_counter()
    diff = compare_models(base, erased, red[:8], names=("base", "erased"), steps=25)
    words = diff.to_frame()
    concept = ConceptSet("red objects", prompts=tuple(captions("red", 30, seed=300)))
    pool = ConceptSet("pool", prompts=tuple(captions(None, 120, seed=500)))
    inputs = ConceptSet("inputs", prompts=tuple(captions("red", 20, seed=700)))
    concepts = compare_concepts(base, erased, classifier_target("color=red"), inputs, [concept], sets_from_pool(pool, 10, 30, seed=1), LAYERS)
    audit_seconds = time.perf_counter() - tic

    from workbench.metrics import wilson_interval

    lora_word = taught_word_localisation(args.prompts)

    result = {
        "red_presence_base": totals["base"][0] / totals["base"][1],
        "red_presence_base_interval": wilson_interval(*totals["base"]),
        "red_presence_erased": totals["erased"][0] / totals["erased"][1],
        "red_presence_erased_interval": wilson_interval(*totals["erased"]),
        "n_images": totals["base"][1],
        "red_presence_attack": {scale: {"rate": k / n, "interval": wilson_interval(k, n)} for scale, (k, n) in attacks.items()},
        "red_word": {"heat_overlap": float(words[words.word == "red"].heat_overlap.mean()),
                     "encoder_cosine": float(words[words.word == "red"].encoder_cosine.mean())},
        "other_words": {"heat_overlap": float(words[words.word != "red"].heat_overlap.mean()),
                        "encoder_cosine": float(words[words.word != "red"].encoder_cosine.mean())},
        "red_cav_accuracy_by_layer": {r.layer: {"base": r.cav_accuracy_base, "erased": r.cav_accuracy_other, "cav_cosine": r.cav_cosine}
                                      for r in concepts.itertuples()},
        "red_tcav_by_layer": {r.layer: {"base": r.tcav_base, "erased": r.tcav_other, "significant_base": bool(r.significant_base),
                                        "significant_erased": bool(r.significant_other)} for r in concepts.itertuples()},
        "lora_word": lora_word,
        "verdicts": {r.layer: r.verdict for r in erasure_verdicts(concepts).itertuples()},
        "erasure": {k: summary[k] for k in ("steps", "seconds", "loss_first_10", "loss_last_10", "config")},
        "seconds": {"erase": round(erase_seconds, 1), "bare_generations": round(bare_seconds, 1), "audit": round(audit_seconds, 1),
                    "audit_over_bare_generations": round(audit_seconds / bare_seconds, 2)},
        "not_measured_yet": ["red_presence_paraphrase (ShapesWorld's word-level vocabulary has no synonyms of red)",
                             "a textual-inversion search for a word that brings red back"],
        "settings": {"prompts": args.prompts, "images_per_prompt": args.images, "steps": 25, "layers": LAYERS,
                     "platform": platform.platform(), "workbench": workbench.__version__},
    }
    with atomic_path(RESULT) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=float))
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
