"""Train the ShapesWorld word encoder (`workbench world train-encoder`).

The diffusion model stays frozen; the encoder learns to turn an image into words that make the
model redraw that image from the template "a S*" (the placeholder takes one slot per word).
Nothing tells the words what to carry: whether w0 ends up with the object and w1..wk with the
background is what the primary-versus-auxiliary analysis then measures.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..models.elite import injected_words
from ..models.loading import load_pipeline
from ..models.word_encoder import WordEncoder, WordEncoderConfig
from ..world.scenes import sample_scene, scenes_to_tensor
from .checkpoint import load_state, save_state
from .diffusion import denoising_loss


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
        words = encoder((images + 1) / 2)
        with injected_words(pipe, words, cfg.placeholder):
            context = pipe.text_encoder(pipe.tokenize([cfg.template] * len(scenes)))[0]
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        loss = denoising_loss(pipe.unet, pipe.scheduler, images, context, generator, cfg.min_snr_gamma)
        for group in optimizer.param_groups:
            group["lr"] = cfg.learning_rate * min(1.0, (step + 1) / cfg.warmup_steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
        optimizer.step()
        log.write(json.dumps({"step": step + 1, "loss": loss.item(), "seconds": time.perf_counter() - tic}) + "\n")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            log.flush()
            save_state({"step": step + 1, "encoder": encoder.state_dict(), "optimizer": optimizer.state_dict()}, checkpoint)
            encoder.save_pretrained(export_to)
    log.close()
    return export_to
