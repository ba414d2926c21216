"""What does the word encoder's objective reward? Writes benchmarks/results/encoder_objective.json.

The encoder is trained to make the frozen model redraw an image from "a S*" with its words in
the slots (Min-SNR-weighted noise prediction error, as `workbench world train-encoder`). Here
the slots get real vocabulary words instead, chosen from each scene's own factors, and the
same loss is measured on the same noisy images and timesteps for every choice: how much each
factor's word is worth to the objective, and what a wrong word costs. The full caption and the
empty caption bound it from both sides.

    python benchmarks/encoder_objective.py [--n 512]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import workbench
from workbench.files import atomic_path
from workbench.models.elite import injected_words
from workbench.models.loading import load_pipeline
from workbench.training.denoising import noised, weighted_error
from workbench.training.word_encoder import EncoderTrainingConfig
from workbench.world.captions import ObjectWords
from workbench.world.scenes import sample_scene, scenes_to_tensor

RESULT = Path(__file__).parent / "results" / "encoder_objective.json"
BINS = (0, 200, 400, 600, 800, 1000)
OTHER_SHAPE = {"circle": "square", "square": "triangle", "triangle": "cross", "cross": "circle"}

# Three slot words from a scene's object and background.
CHOICES: dict[str, Callable[[ObjectWords, str], list[str]]] = {
    "size colour shape": lambda o, bg: [o.size, o.color, o.shape],
    "colour shape background": lambda o, bg: [o.color, o.shape, bg],
    "size colour background": lambda o, bg: [o.size, o.color, bg],
    "colour background size": lambda o, bg: [o.color, bg, o.size],
    "colour wrong-shape background": lambda o, bg: [o.color, OTHER_SHAPE[o.shape], bg],
}


@torch.no_grad()
def losses(pipe, noisy, noise, timesteps, context, gamma: float, batch: int = 128) -> dict:
    predicted = torch.cat([
        pipe.unet(noisy[i : i + batch], timesteps[i : i + batch], encoder_hidden_states=context[i : i + batch]).sample
        for i in range(0, len(noisy), batch)
    ])
    per_sample = ((predicted - noise) ** 2).mean(dim=(1, 2, 3))
    by_bin = {f"{a}-{b}": float(per_sample[(timesteps >= a) & (timesteps < b)].mean()) for a, b in zip(BINS, BINS[1:])}
    # the encoder trainer's own loss, so the figures are what its training minimises
    weighted = float(weighted_error(predicted, noise, pipe.scheduler, timesteps, gamma))
    return {"min_snr_loss": weighted, "loss_by_timestep": by_bin}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="one-object training-split scenes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pipeline", default="shapes")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    tic = time.perf_counter()
    pipe = load_pipeline(args.pipeline)
    gamma = EncoderTrainingConfig().min_snr_gamma
    rng = np.random.default_rng(args.seed)
    scenes = [sample_scene(rng, 1, pipe.unet.config.sample_size, "train") for _ in range(args.n)]
    noisy, noise, timesteps = noised(pipe.scheduler, scenes_to_tensor(scenes), torch.Generator().manual_seed(args.seed))
    table = pipe.text_encoder.get_input_embeddings().weight.detach()
    vocabulary = pipe.tokenizer.get_vocab()
    results = {}
    with torch.no_grad():
        for name, captions in (("full caption", [s.caption for s in scenes]), ("empty caption", [""] * len(scenes))):
            results[name] = losses(pipe, noisy, noise, timesteps, pipe.encode_prompt(captions), gamma)
        for name, pick in CHOICES.items():
            words = torch.stack([table[[vocabulary[w] for w in pick(s.factors.objects[0], s.background)]] for s in scenes])
            with injected_words(pipe, words):
                results[f"a S* = {name}"] = losses(pipe, noisy, noise, timesteps, pipe.encode_prompt(["a S*"] * len(scenes)), gamma)
    report = {
        "losses": results,
        "n_images": len(scenes),
        "seconds": round(time.perf_counter() - tic, 1),
        "settings": {**vars(args), "out": str(args.out), "min_snr_gamma": gamma, "template": "a S*"},
        "versions": {"workbench": workbench.__version__, "torch": torch.__version__},
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    for name, row in results.items():
        print(f"{name:40s} {row['min_snr_loss']:.5f}  " + " ".join(f"{v:.5f}" for v in row["loss_by_timestep"].values()))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
