"""Train the ShapesWorld text-to-image model from scratch (`workbench world train`).

The denoiser (a UNet, or an SD3-style transformer with `--denoiser transformer`) and the text encoder learn jointly on freshly drawn training-split scenes at every
step (the world is infinite, so there is no epoch). Epsilon prediction with Min-SNR loss
weighting (Hang et al., 2023) converges faster at small scale; an exponential moving average
of the weights is what gets exported. Training resumes from `OUT/checkpoint.pt`.
"""

from __future__ import annotations

import copy
import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.files import atomic_path

from workbench.capture.architectures import attention_layers, select_layers
from workbench.capture.processor import capturing

from ..models.pipeline import ShapesModelConfig, build_components, pipeline_from_components, predict_noise
from ..scenes import Scene, sample_scene, scenes_to_tensor
from .checkpoint import load_state, save_state
from .denoising import noised_batch, weighted_error
from .grounding import grounding_loss, grounding_targets


@dataclass(frozen=True)
class DiffusionTrainingConfig:
    """The defaults are the recipe of the embedded model (`data/shapes`)."""

    steps: int = 6000
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    caption_dropout: float = 0.1
    two_object_fraction: float = 0.7
    ema_decay: float = 0.999
    min_snr_gamma: float = 5.0
    checkpoint_every: int = 250
    seed: int = 0
    # Linear decay of the learning rate to 0 from this step to `steps` (None: constant);
    # annealing at the end of a run lowers the loss well below its constant-rate plateau.
    anneal_from: int | None = 4000
    # Weight of the token grounding loss (grounding.py) on every cross-attention layer; 0 trains
    # without it. The shipped model was fine-tuned with it so that its words localise.
    grounding_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.grounding_weight < 0:
            raise ValueError(f"grounding_weight must be >= 0, got {self.grounding_weight}")

    def learning_rate_at(self, step: int) -> float:
        """Warm-up, then constant, then (from `anneal_from`) linear decay to zero."""
        rate = self.learning_rate * min(1.0, (step + 1) / self.warmup_steps)
        if self.anneal_from is not None and step >= self.anneal_from:
            rate *= max(0.0, (self.steps - step) / max(1, self.steps - self.anneal_from))
        return rate


def draw_batch(step: int, cfg: DiffusionTrainingConfig, image_size: int) -> tuple[list[Scene], list[str]]:
    """The training scenes of `step` and their captions ("" where dropped): a pure function of
    (seed, step), so resuming is exact."""
    rng = np.random.default_rng([cfg.seed, step])
    counts = rng.random(cfg.batch_size) < cfg.two_object_fraction
    scenes = [sample_scene(rng, 2 if two else 1, image_size, "train") for two in counts]
    captions = ["" if rng.random() < cfg.caption_dropout else s.caption for s in scenes]
    return scenes, captions


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)


def export_pipeline(parts: dict, target: Path) -> None:
    """Write a loadable pipeline folder of `build_components`-style parts atomically (safetensors + configs)."""
    pipe = pipeline_from_components(parts)
    with atomic_path(target) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)


def _model_config(out: Path, requested: ShapesModelConfig | None) -> ShapesModelConfig:
    """The sizes to train: those of the run in `out` if it has started, else `requested`."""
    stored = out / "config.json"
    if not (out / "checkpoint.pt").exists() or not stored.exists():
        return requested or ShapesModelConfig()
    started = ShapesModelConfig.from_dict(json.loads(stored.read_text())["model"])
    if requested is not None and requested != started:
        raise ValueError(
            f"{out} holds a run of model sizes {started.to_dict()}; it cannot resume with {requested.to_dict()} "
            "(choose a new --out for other sizes)"
        )
    return started


def load_exported_weights(modules: dict[str, torch.nn.Module], folder: str | Path) -> None:
    """Load the weights of an exported pipeline `folder` (safetensors, never pickles) into
    `modules` (component name -> module of the same sizes)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name, module in modules.items():
        files = sorted((folder / name).glob("*.safetensors"))
        if len(files) != 1:
            raise ValueError(f"{folder / name}: expected one .safetensors file of the exported {name}, found {len(files)}")
        weights = load_file(files[0])
        expected = module.state_dict()
        for key, value in expected.items():
            if key not in weights or weights[key].shape != value.shape:
                found = tuple(weights[key].shape) if key in weights else "nothing"
                raise ValueError(
                    f"{files[0]}: weight {key!r} should have shape {tuple(value.shape)}, found {found} "
                    "(give the sizes the exported model was trained with)"
                )
        module.load_state_dict({key: weights[key] for key in expected})


def train_diffusion(
    out: str | Path,
    cfg: DiffusionTrainingConfig = DiffusionTrainingConfig(),
    model: ShapesModelConfig | None = None,
    export_to: str | Path | None = None,
    init_from: str | Path | None = None,
) -> Path:
    """Train (or resume) and export the EMA pipeline; returns the exported folder.

    Writes into `out`: checkpoint.pt (resumable state), log.jsonl (per step: the denoising
    loss, and with grounding_weight > 0 the grounding loss before its weight) and
    pipeline/ (or `export_to`), each replaced atomically at every checkpoint. `model` sizes a
    fresh run (default: ShapesModelConfig()); a resumed run keeps the sizes it started with.
    `init_from`: an exported pipeline folder whose weights a fresh run starts from (its
    optimiser state is not kept, so the warm-up runs again); ignored when `out` resumes.
    """
    out = Path(out)
    model = _model_config(out, model)
    if cfg.grounding_weight > 0 and model.denoiser == "transformer":
        raise ValueError("grounding_weight applies to the UNet's cross-attention; the transformer has joint attention (give 0)")
    out.mkdir(parents=True, exist_ok=True)
    export_to = Path(export_to) if export_to else out / "pipeline"
    parts = build_components(model, seed=cfg.seed)
    name = "transformer" if model.denoiser == "transformer" else "unet"  # also the checkpoint's keys
    denoiser, text_encoder, tokenizer, scheduler = (parts[k] for k in (name, "text_encoder", "tokenizer", "scheduler"))
    ema_denoiser, ema_text = copy.deepcopy(denoiser), copy.deepcopy(text_encoder)
    params = list(denoiser.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=1e-2)

    start = 0
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists():
        state = load_state(checkpoint)
        denoiser.load_state_dict(state[name])
        text_encoder.load_state_dict(state["text_encoder"])
        ema_denoiser.load_state_dict(state[f"ema_{name}"])
        ema_text.load_state_dict(state["ema_text"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    elif init_from is not None:
        load_exported_weights({name: denoiser, "text_encoder": text_encoder}, init_from)
        ema_denoiser.load_state_dict(denoiser.state_dict())
        ema_text.load_state_dict(text_encoder.state_dict())
    (out / "config.json").write_text(json.dumps({"training": cfg.__dict__, "model": model.to_dict()}, indent=1))

    def save(step: int) -> None:
        save_state(
            {
                "step": step,
                name: denoiser.state_dict(),
                "text_encoder": text_encoder.state_dict(),
                f"ema_{name}": ema_denoiser.state_dict(),
                "ema_text": ema_text.state_dict(),
                "optimizer": optimizer.state_dict(),
            },
            checkpoint,
        )
        export_pipeline({name: ema_denoiser, "text_encoder": ema_text, "tokenizer": tokenizer, "scheduler": scheduler}, export_to)

    def tokenize(captions: list[str]) -> torch.Tensor:
        return tokenizer(captions, padding="max_length", max_length=model.max_length, truncation=True, return_tensors="pt").input_ids

    denoiser.train()
    text_encoder.train()
    # Cross-attention probabilities of each step, kept with their graph for the grounding loss.
    grounded_layers = select_layers(attention_layers(denoiser), "all" if cfg.grounding_weight > 0 else None, "cross")
    probabilities: list[torch.Tensor] = []
    log = (out / "log.jsonl").open("a")
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train diffusion")
    tic = time.perf_counter()
    for step in bar:
        scenes, captions = draw_batch(step, cfg, model.image_size)
        text = text_encoder(tokenize(captions))
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        noisy, noise, timesteps = noised_batch(scheduler, scenes_to_tensor(scenes), generator)
        probabilities.clear()
        capture = capturing(denoiser, grounded_layers, lambda batch: slice(None), lambda layer, p: probabilities.append(p))
        with capture if grounded_layers else nullcontext():
            predicted = predict_noise(denoiser, noisy, timesteps, (text[0], text[1]))
        loss = weighted_error(predicted, noise, scheduler, timesteps, cfg.min_snr_gamma)
        row = {"step": step + 1, "loss": loss.item()}
        if grounded_layers:
            grounding = grounding_loss(probabilities, *grounding_targets(scenes, captions, model.max_length))
            loss = loss + cfg.grounding_weight * grounding
            row["grounding"] = grounding.item()

        for group in optimizer.param_groups:
            group["lr"] = cfg.learning_rate_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        _ema_update(ema_denoiser, denoiser, decay)
        _ema_update(ema_text, text_encoder, decay)

        bar.set_postfix(loss=f"{loss.item():.4f}")
        log.write(json.dumps(row | {"seconds": time.perf_counter() - tic}) + "\n")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            log.flush()
            save(step + 1)
    log.close()
    if start >= cfg.steps and not export_to.exists():
        save(start)
    return export_to
