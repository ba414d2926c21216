"""How good is the embedded ShapesWorld model? Writes benchmarks/results/world_quality.json.

Generates images for held-out captions (factor combinations never seen in training), then
judges them by exact palette segmentation and the shipped classifier. The same judge run on
the true renderings of those captions is reported as `judge_on_ground_truth` (its ceiling).

    python benchmarks/world_quality.py [--n 256] [--steps 25] [--guidance G]

A quick check of a training run's binding: `--objects 2 --n 64 --pipeline OUT/pipeline
--out /tmp/quick.json` (about 1.5 minutes on 2 cores).

The ShapesWorld transformer: `--pipeline shapes-transformer --out
benchmarks/results/world_quality_transformer.json --training checkpoints/shapes-transformer`
(the training folder's config and log are summarised into the result: steps, seconds, loss).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import workbench
from workbench.shapesworld.models.classifier import ShapesClassifier
from workbench.shapesworld.models.judge import judge_images
from workbench.pipelines.loading import load_pipeline
from workbench.shapesworld.data import embedded_path
from workbench.shapesworld.models.pipeline import DEFAULT_GUIDANCE_SCALE
from workbench.files import atomic_path
from workbench.shapesworld import sample_scenes

RESULT = Path(__file__).parent / "results" / "world_quality.json"


def generate(pipe, captions: list[str], steps: int, guidance: float, seed: int, batch: int = 32) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    pipe.set_progress_bar_config(disable=True)
    chunks = []
    for start in tqdm(range(0, len(captions), batch), desc="generate"):
        out = pipe(captions[start : start + batch], num_inference_steps=steps, guidance_scale=guidance, generator=generator, output_type="np")
        chunks.append(out.images)
    return np.concatenate(chunks)


def swapped_share(frame) -> float:
    """Of the two-object scenes' objects drawn in their colour but the wrong shape, the share
    drawn in the other object's shape (a binding swap rather than a badly drawn shape)."""
    two = frame[frame.n_objects == 2].copy()
    two["other_shape"] = two.groupby("image")["shape"].transform(lambda s: s.iloc[::-1].to_numpy())
    wrong = two[two.color_correct & ~two.shape_correct]
    return float((wrong.shape_predicted == wrong.other_shape).mean()) if len(wrong) else float("nan")


def object_counts(text: str) -> tuple[int, ...]:
    """`--objects`: comma-separated object counts, e.g. "1,2" (argparse names the bad value)."""
    return tuple(int(n) for n in text.split(","))


def training_summary(folder: Path) -> dict:
    """Steps, wall seconds (summed over resumed sessions), final loss and settings of a training run."""
    config = json.loads((folder / "config.json").read_text())
    steps: dict[int, dict] = {}
    for line in (folder / "log.jsonl").read_text().splitlines():
        entry = json.loads(line)
        steps[entry["step"]] = entry  # a resumed run repeats steps after its last checkpoint: the later entry counts
    # seconds restart at each resume: add up each session's last time
    sessions, last = 0.0, 0.0
    for line in (folder / "log.jsonl").read_text().splitlines():
        seconds = json.loads(line)["seconds"]
        if seconds < last:
            sessions += last
        last = seconds
    final = [steps[s]["loss"] for s in sorted(steps)[-100:]]
    return {"steps": max(steps), "wall_seconds": round(sessions + last), "mean_loss_last_100_steps": float(np.mean(final)),
            "config": config}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="generations (held-out captions)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE_SCALE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pipeline", default="shapes")
    parser.add_argument("--objects", type=object_counts, default=(1, 2), help="object counts to sample, comma-separated (2: two-object scenes only)")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--training", type=Path, default=None, help="the model's training folder (config.json, log.jsonl) to summarise")
    args = parser.parse_args()

    scenes = sample_scenes(args.n, seed=args.seed, split="test", n_objects=args.objects)
    captions = [s.caption for s in scenes]
    classifier = ShapesClassifier.from_pretrained(embedded_path("shapes-classifier"))
    pipe = load_pipeline(args.pipeline)
    tic = time.perf_counter()
    images = generate(pipe, captions, args.steps, args.guidance, args.seed)
    seconds = time.perf_counter() - tic
    report, frame = judge_images(images, captions, classifier)
    truth, _ = judge_images(np.stack([s.image for s in scenes]).astype(np.float32) / 255, captions, classifier)
    by_count = {
        f"{n}_object": {
            "color_accuracy": float(group.color_correct.mean()),
            "shape_accuracy": float(group.shape_correct.mean()),
            "n_images": int(group.image.nunique()),
        }
        for n, group in frame.groupby("n_objects")
    }
    if "2_object" in by_count:
        by_count["2_object"]["wrong_shape_is_the_other_objects"] = swapped_share(frame)
    result = {
        **report.to_dict(),
        "by_object_count": by_count,
        "judge_on_ground_truth": truth.to_dict(),
        "goals": {"color_accuracy": 0.90, "background_accuracy": 0.95, "shape_accuracy": 0.85},
        "settings": {**vars(args), "out": str(args.out), "training": str(args.training) if args.training else None,
                     "split": "test (held-out combinations)"},
        "generation_seconds": round(seconds, 2),
        **({"training": training_summary(args.training)} if args.training else {}),
        "versions": {"workbench": workbench.__version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("color_accuracy", "shape_accuracy", "background_accuracy", "binding_accuracy", "n_images")}, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
