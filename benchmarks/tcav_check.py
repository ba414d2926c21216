"""Is TCAV right on a model with a known answer? Writes benchmarks/results/tcav_check.json.

Planted: the concept "red" (images of red objects) should drive the ShapesWorld classifier's
"red" colour logit read from the model's x0-hat at a UNet layer; random-vs-random tests should
almost never come out significant (false-positive rate, goal <= 0.05). The comparison with
captum.concept.TCAV (agreement and speed) is still to be added.

    python benchmarks/tcav_check.py [--random 20] [--size 50]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import workbench
from workbench.concepts import from_query, random_sets, run_tcav
from workbench.files import atomic_path
from workbench.models.classifier import ShapesClassifier
from workbench.models.loading import embedded_path, load_pipeline

RESULT = Path(__file__).parent / "results" / "tcav_check.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=20, help="R random sets")
    parser.add_argument("--size", type=int, default=50, help="examples per concept set")
    parser.add_argument("--layer", default="unet.mid_block")
    parser.add_argument("--timestep", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    pipe = load_pipeline("shapes")
    classifier = ShapesClassifier.from_pretrained(embedded_path("shapes-classifier"))
    randoms = random_sets(args.random, args.size, seed=args.seed)
    inputs = from_query("red inputs", "color=red", args.size, seed=args.seed + 1000)
    tic = time.perf_counter()
    planted = run_tcav(pipe, classifier, ("color", "red"), inputs, [from_query("red", "color=red", args.size, seed=args.seed + 1)],
                       randoms, [args.layer], timestep=args.timestep, seed=args.seed)
    seconds = time.perf_counter() - tic
    # Random sets posing as concepts: how often is a non-concept flagged?
    posing = random_sets(args.random, args.size, seed=args.seed + 777)
    null = run_tcav(pipe, classifier, ("color", "red"), inputs, posing, randoms, [args.layer], timestep=args.timestep, seed=args.seed)
    row = planted.iloc[0]
    result = {
        "planted_score": float(row.score),
        "planted_p_value": float(row.p_value),
        "planted_significant": bool(row.significant),
        "planted_cav_accuracy": float(row.cav_accuracy),
        "random_false_positive_rate": float(null.significant.mean()),
        "random_false_positive_rate_uncorrected": float((null.p_value < 0.05).mean()),
        "captum_agreement": None,
        "speedup_vs_captum": None,
        "planted_seconds": round(seconds, 1),
        "settings": {**vars(args), "out": str(args.out), "target": "color=red logit of x0-hat"},
        "versions": {"workbench": workbench.__version__, "torch": torch.__version__},
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
