"""Train the ShapesWorld word encoder (`workbench world train-encoder`).

The diffusion model stays frozen; the encoder learns to turn an image into words that make the
model redraw that image from the template "a S*" (the placeholder takes one slot per word).

Trained on reconstruction alone, nothing tells the words what to carry, and the shipped encoder
of that kind came out entangled: every word attended everywhere and carried every factor
(benchmarks/primary_vs_auxiliary.py). ELITE's premise, a primary word for the object and
auxiliary words for the rest, is made a training signal with ShapesWorld's exact masks
(`split_fraction`): in that fraction of each batch, half the samples keep only w0 (the others
zeroed) and are scored on the object's pixels alone; half keep only w1..wk and must redraw the
scene with its object removed (the bare background, exact in ShapesWorld), so auxiliary words
that carry the object are penalised for it; the rest keep every word and redraw the image.
That makes each side sufficient for its part but does not stop a word from also carrying the
other part; the analysis measures whether the split took (docs/lab-notes.md: what else was
tried).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.pipelines import injected_words, load_pipeline

from ..models.word_encoder import WordEncoder, WordEncoderConfig
from ..render import background_image
from ..scenes import images_to_tensor, sample_scene, scenes_to_tensor
from .checkpoint import load_state, save_state
from .denoising import noised_batch, weighted_error


@dataclass(frozen=True)
class EncoderTrainingConfig:
    steps: int = 3000
    batch_size: int = 32
    learning_rate: float = 3e-4
    warmup_steps: int = 100
    template: str = "a S*"
    placeholder: str = "S*"
    min_snr_gamma: float = 5.0
    checkpoint_every: int = 250
    seed: int = 0
    # Fraction of each batch trained with one side only (w0 on the object, w1..wk on the background).
    split_fraction: float = 0.5


def split_roles(scenes, n_words: int, split_fraction: float, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which words each sample keeps, what it must redraw and which pixels score it.

    Returns:
        keep (batch, n_words, 1): 1 for a kept word, 0 for a zeroed one;
        targets (batch, 3, y, x) in [-1, 1]: the scene, or its bare background (auxiliary role);
        pixel_weights (batch, 1, y, x): 1 on the scored pixels.
    """
    draws = rng.random(len(scenes))
    keep = torch.ones(len(scenes), n_words, 1)
    targets, weights = [], []
    for b, (scene, draw) in enumerate(zip(scenes, draws)):
        image, region = scene.image, np.ones((scene.image_size, scene.image_size), dtype=bool)
        if draw < split_fraction / 2:  # the primary word alone, on the object
            keep[b, 1:] = 0
            region = scene.object_masks.any(axis=0)
        elif draw < split_fraction:  # the auxiliary words alone: the background without the object
            keep[b, 0] = 0
            image = background_image(scene.background, scene.image_size)
        targets.append(image)
        weights.append(torch.from_numpy(region.astype(np.float32)))
    return keep, images_to_tensor(targets), torch.stack(weights)[:, None]


def train_word_encoder(
    out: str | Path,
    cfg: EncoderTrainingConfig = EncoderTrainingConfig(),
    encoder_config: WordEncoderConfig | None = None,
    pipeline: str = "shapes",
    export_to: str | Path | None = None,
) -> Path:
    """Train (or resume from OUT/checkpoint.pt) and export the encoder; returns its folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    export_to = Path(export_to) if export_to else out / "encoder"
    pipe = load_pipeline(pipeline)
    for module in (pipe.unet, pipe.text_encoder):
        module.requires_grad_(False)
    if cfg.template.count(cfg.placeholder) != 1:
        raise ValueError(f"template {cfg.template!r} must contain the placeholder {cfg.placeholder!r} once")
    encoder_config = encoder_config or WordEncoderConfig(text_width=pipe.text_encoder.config.hidden_size, image_size=pipe.unet.config.sample_size)
    torch.manual_seed(cfg.seed)
    encoder = WordEncoder(encoder_config)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=cfg.learning_rate)
    start, checkpoint = 0, out / "checkpoint.pt"
    if checkpoint.exists():
        state = load_state(checkpoint)
        encoder.load_state_dict(state["encoder"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    (out / "config.json").write_text(json.dumps({"training": asdict(cfg), "encoder": asdict(encoder_config), "pipeline": pipeline}, indent=1))

    encoder.train()
    log = (out / "log.jsonl").open("a")
    tic = time.perf_counter()
    for step in tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train encoder"):
        rng = np.random.default_rng([cfg.seed, step])
        scenes = [sample_scene(rng, 1, encoder_config.image_size, "train") for _ in range(cfg.batch_size)]
        images = scenes_to_tensor(scenes)
        keep, targets, pixel_weights = split_roles(scenes, encoder_config.n_words, cfg.split_fraction, rng)
        raw = encoder((images + 1) / 2)
        with injected_words(pipe, raw * keep, cfg.placeholder):
            context = pipe.text_encoder(pipe.tokenize([cfg.template] * len(scenes)))[0]
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        noisy, noise, timesteps = noised_batch(pipe.scheduler, targets, generator)
        predicted = pipe.unet(noisy, timesteps, encoder_hidden_states=context).sample
        loss = weighted_error(predicted, noise, pipe.scheduler, timesteps, cfg.min_snr_gamma, pixel_weights)
        for group in optimizer.param_groups:
            group["lr"] = cfg.learning_rate * min(1.0, (step + 1) / cfg.warmup_steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
        optimizer.step()
        log.write(json.dumps({"step": step + 1, "loss": loss.item(), "seconds": time.perf_counter() - tic}) + "\n")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            log.flush()
            state = {"step": step + 1, "encoder": encoder.state_dict(), "optimizer": optimizer.state_dict()}
            save_state(state, checkpoint)
            encoder.save_pretrained(export_to)
    log.close()
    return export_to
