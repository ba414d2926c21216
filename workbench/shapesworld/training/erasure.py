"""Erase a colour from the ShapesWorld model by few-shot unlearning of its text encoder
(`workbench world erase`), as "Erasing Concepts from Text-to-Image Diffusion Models with
Few-shot Unlearning" (Fuchi & Takagi, 2024) does: only the text encoder learns, from a few
images without the concept captioned with it, so that the word's conditioning moves to what
those images give. Here the few images are scenes whose objects of the erased colour are
painted in other colours, captioned as if they were that colour; the denoiser stays frozen.
The result is a model whose erasure is known, for the model-diff and erasure audits to find.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..scenes import Scene, sample_scene, scenes_to_tensor
from ..vocabulary import COLORS
from .denoising import noised_batch, weighted_error
from .diffusion import export_pipeline
from ..models.pipeline import pipeline_from_components, predict_noise


@dataclass(frozen=True)
class ErasureConfig:
    color: str = "red"
    shots: int = 8  # captioned images without the colour
    steps: int = 150
    batch_size: int = 8
    learning_rate: float = 2e-4
    min_snr_gamma: float = 5.0
    seed: int = 0


def erasure_shots(cfg: ErasureConfig, image_size: int = 32) -> tuple[list[Scene], list[str]]:
    """`shots` scenes with at least one object of the colour: (the scenes repainted so that
    none of it is left, their original captions)."""
    if cfg.color not in COLORS:
        raise ValueError(f"{cfg.color!r} is not a ShapesWorld colour; the palette: {', '.join(COLORS)}")
    rng = np.random.default_rng(cfg.seed)
    others = [c for c in COLORS if c != cfg.color]
    scenes, captions = [], []
    while len(scenes) < cfg.shots:
        scene = sample_scene(rng, int(rng.integers(1, 3)), image_size, "train")
        if not any(o.color == cfg.color for o in scene.objects):
            continue
        painted = tuple(dataclasses.replace(o, color=str(rng.choice(others))) if o.color == cfg.color else o for o in scene.objects)
        scenes.append(dataclasses.replace(scene, objects=painted))
        captions.append(scene.caption)
    return scenes, captions


def erase_color(pipe, cfg: ErasureConfig = ErasureConfig()):
    """A copy of the pipeline whose text encoder has unlearned `cfg.color` (the denoiser and
    tokenizer are shared with `pipe`, untouched).

    Returns:
        (the erased pipeline, a summary: steps, seconds, the loss at the start and the end).
    """
    scenes, captions = erasure_shots(cfg, pipe.denoiser.config.sample_size)
    images = scenes_to_tensor(scenes)
    denoiser = pipe.denoiser
    text_encoder = copy.deepcopy(pipe.text_encoder).train()
    name = "transformer" if denoiser is getattr(pipe, "transformer", None) else "unet"
    erased = pipeline_from_components({name: denoiser, "text_encoder": text_encoder, "tokenizer": pipe.tokenizer, "scheduler": pipe.scheduler})
    erased.set_progress_bar_config(disable=True)
    denoiser.requires_grad_(False)
    optimizer = torch.optim.AdamW(text_encoder.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(cfg.seed)
    losses, tic = [], time.perf_counter()
    for step in tqdm(range(cfg.steps), desc=f"erase {cfg.color}"):
        pick = torch.randint(0, len(scenes), (cfg.batch_size,), generator=generator)
        ids = erased.tokenize([captions[i] for i in pick])
        text = text_encoder(ids)
        noisy, noise, timesteps = noised_batch(pipe.scheduler, images[pick], generator)
        predicted = predict_noise(denoiser, noisy, timesteps, (text[0], text[1]))
        loss = weighted_error(predicted, noise, pipe.scheduler, timesteps, cfg.min_snr_gamma)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    text_encoder.eval().requires_grad_(False)
    summary = {"steps": cfg.steps, "seconds": round(time.perf_counter() - tic, 1), "loss_first_10": float(np.mean(losses[:10])),
               "loss_last_10": float(np.mean(losses[-10:])), "shots": [s.caption for s in scenes], "captions": captions,
               "config": dataclasses.asdict(cfg)}
    return erased, summary


def erase_to_folder(pipeline: str | Path, out: str | Path, cfg: ErasureConfig = ErasureConfig()) -> Path:
    """Erase `cfg.color` from the pipeline (a folder or "shapes") and write the erased pipeline
    to `out` (atomically), with erasure.json (the shots and the losses)."""
    from workbench.pipelines.loading import load_pipeline

    pipe = load_pipeline(pipeline)
    erased, summary = erase_color(pipe, cfg)
    name = "transformer" if pipe.denoiser is getattr(pipe, "transformer", None) else "unet"
    export_pipeline({name: pipe.denoiser, "text_encoder": erased.text_encoder, "tokenizer": pipe.tokenizer, "scheduler": pipe.scheduler}, Path(out))
    (Path(out) / "erasure.json").write_text(json.dumps(summary, indent=1))
    return Path(out)
