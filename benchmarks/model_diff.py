"""Is "red" gone from the ShapesWorld model after few-shot erasure, or only hidden? Writes
benchmarks/results/model_diff.json.

Erases "red" from the embedded model (`workbench world erase`: the text encoder unlearns it from
8 repainted scenes), then measures, base against erased:
- the audit (`analyses.audit_erasure`): the share of generations with red drawn (exact palette
  segmentation, at least 12 pixels) from held-out captions naming red, with 95% Wilson
  intervals, in both models; from the same red named as the second of two objects; and under
  attack: Ring-A-Bell's red direction (from the base model) added to the erased model's encoding
  at scales 1 and 2, and a word learned by textual-inversion search on the base model's red
  generations;
- the words: compare_models on those captions (the red word's heat-map overlap, text-encoder
  cosine; the other words' for contrast);
- inside the model (in the audit): compare_concepts for the concept "red objects" (captions naming red against
  random captions) at every text-encoder layer and three UNet blocks, with the classifier's
  red logit as the target: CAV accuracy, CAV cosine and TCAV in each model, and the verdict per
  layer (gone / hidden but readable / still driving);
- the LoRA word: "<pc>" taught as a purple cross (`workbench world teach`), its heat map's DAAM
  IoU against the drawn object;
- the palette shift: a LoRA fine-tune drawing each colour as the next (`workbench world
  shift-palette`): the red word's text-encoder output and heat map against the base model, and
  red and green presence from the red captions in both;
- seconds: the erasure, and the audit against the bare generations it needs.

    python benchmarks/model_diff.py [--images 4] [--prompts 16] [--search-steps 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

import workbench
from workbench.analyses import audit_erasure, compare_models, presence
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


def palette_shift(red: list[str], images: int) -> dict:
    """Fine-tune with each colour drawn as the next (red as green, a UNet LoRA), then what the
    comparison sees: the words' text-encoder outputs unchanged, their heat maps against the base
    model, and what is drawn for "red" (red and green presence in both models)."""
    from workbench.shapesworld.training.palette_shift import PaletteShiftConfig, shift_palette

    base = workbench.load_pipeline("shapes")
    shifted = workbench.load_pipeline("shapes")
    for pipe in (base, shifted):
        pipe.set_progress_bar_config(disable=True)
    cfg = PaletteShiftConfig()
    summary = shift_palette(shifted, cfg)
    words = compare_models(base, shifted, red[:8], names=("base", "shifted"), steps=25).to_frame()
    drawn = {}
    for color in ("red", cfg.drawn_as("red")):
        for name, pipe in (("base", base), ("shifted", shifted)):
            frame = presence(pipe, red, color_present(color), images_per_prompt=images, steps=25)
            drawn[f"{color}_{name}"] = {"rate": float(frame.present.sum() / frame.n.sum()), "n": int(frame.n.sum())}
    return {"presence_for_red_captions": drawn,
            "red_word": {"heat_overlap": float(words[words.word == "red"].heat_overlap.mean()),
                         "encoder_cosine": float(words[words.word == "red"].encoder_cosine.mean())},
            "all_words_encoder_cosine_min": float(words.encoder_cosine.min()),
            "fine_tune": {k: summary[k] for k in ("steps", "seconds", "loss_first_10", "loss_last_10", "config")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="generations per caption")
    parser.add_argument("--prompts", type=int, default=16, help="held-out captions naming red")
    parser.add_argument("--search-steps", type=int, default=300, help="steps of the textual-inversion word search")
    args = parser.parse_args()
    base = workbench.load_pipeline("shapes")
    base.set_progress_bar_config(disable=True)
    tic = time.perf_counter()
    erased, summary = erase_color(base, ErasureConfig(color="red"))
    erase_seconds = time.perf_counter() - tic
    red = captions("red", args.prompts, seed=100)
    detector = color_present("red")
    # Ring-A-Bell pairs: the same captions in other colours
    without = [caption.replace(" red ", f" {color} ") for caption, color in zip(red, ["blue", "green", "yellow", "purple"] * len(red))]
    # ShapesWorld's vocabulary has no synonym of red; the nearest thing to a paraphrase is red named
    # in another place: as the second object of a two-object caption
    rephrased = [f"a {size} blue {shape} and {caption.split(' on ')[0]} on {caption.split(' on ')[1]}"
                 for caption, size, shape in zip(red, ["small", "large"] * len(red), ["square", "triangle"] * len(red))]
    inside = dict(target=classifier_target("color=red"), inputs=ConceptSet("inputs", prompts=tuple(captions("red", 20, seed=700))),
                  concepts=[ConceptSet("red objects", prompts=tuple(captions("red", 30, seed=300)))],
                  random=sets_from_pool(ConceptSet("pool", prompts=tuple(captions(None, 120, seed=500))), 10, 30, seed=1), layers=LAYERS)

    tic = time.perf_counter()
    bare = [presence(pipe, red, detector, images_per_prompt=args.images, steps=25) for pipe in (base, erased)]
    bare_seconds = time.perf_counter() - tic
    tic = time.perf_counter()
    audit = audit_erasure(base, erased, red, detector, word="red", without=without, paraphrases=rephrased, scales=(1.0, 2.0),
                          search_steps=args.search_steps, tcav=inside, images_per_prompt=args.images, steps=25)
    audit_seconds = time.perf_counter() - tic
    assert [int(f.present.sum()) for f in bare] == [audit.rate(m, "plain").present for m in ("base", "erased")]  # same seeds, same images
    diff = compare_models(base, erased, red[:8], names=("base", "erased"), steps=25)
    words = diff.to_frame()
    lora_word = taught_word_localisation(args.prompts)
    shifted = palette_shift(red, args.images)

    def rate(model: str, source: str) -> dict:
        row = audit.rate(model, source)
        return {"rate": row.rate, "interval": [row.low, row.high], "present": int(row.present), "n": int(row.n)}

    concepts = audit.layers
    result = {
        "verdict": audit.verdict(),
        "recovered_by": audit.recovered_by(),
        "red_presence_base": rate("base", "plain"),
        "red_presence_erased": rate("erased", "plain"),
        "red_presence_paraphrase": {"base": rate("base", "paraphrase"), "erased": rate("erased", "paraphrase"),
                                    "what": "red named as the second object of two-object captions (ShapesWorld has no synonym of red)"},
        "red_presence_attack": {"ring-a-bell x1": rate("erased", "ring-a-bell x1"), "ring-a-bell x2": rate("erased", "ring-a-bell x2"),
                                "word search": rate("erased", "word search")},
        "red_word": {"heat_overlap": float(words[words.word == "red"].heat_overlap.mean()),
                     "encoder_cosine": float(words[words.word == "red"].encoder_cosine.mean())},
        "other_words": {"heat_overlap": float(words[words.word != "red"].heat_overlap.mean()),
                        "encoder_cosine": float(words[words.word != "red"].encoder_cosine.mean())},
        "red_cav_accuracy_by_layer": {r.layer: {"base": r.cav_accuracy_base, "erased": r.cav_accuracy_erased, "cav_cosine": r.cav_cosine}
                                      for r in concepts.itertuples()},
        "red_tcav_by_layer": {r.layer: {"base": r.tcav_base, "erased": r.tcav_erased, "p_value_erased": r.p_value_erased}
                              for r in concepts.itertuples()},
        "verdicts": {r.layer: r.verdict for r in concepts.itertuples()},
        "lora_word": lora_word,
        "palette_shift": shifted,
        "erasure": {k: summary[k] for k in ("steps", "seconds", "loss_first_10", "loss_last_10", "config")},
        "seconds": {"erase": round(erase_seconds, 1), "bare_generations": round(bare_seconds, 1), "audit": round(audit_seconds, 1),
                    "audit_over_bare_generations": round(audit_seconds / bare_seconds, 2)},
        "settings": {"prompts": args.prompts, "images_per_prompt": args.images, "steps": 25, "search_steps": args.search_steps,
                     "layers": LAYERS, "platform": platform.platform(), "workbench": workbench.__version__},
    }
    with atomic_path(RESULT) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=float))
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
