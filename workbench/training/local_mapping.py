"""Train ELITE's local mapping on ShapesWorld (`workbench world train-local`), ELITE's second
stage: the word encoder and the text-to-image model stay frozen; the local mapping (patch
features of the object -> local tokens) and each cross-attention layer's local key/value
projections (initialised from the layer's own, as ELITE does) learn to redraw the image.

ELITE adds the local mapping because global words lose detail; here they lose shape (redraws
keep the input's shape at chance, benchmarks/primary_vs_auxiliary.py). Patch features are
masked to the object's patches (ShapesWorld's exact masks), as ELITE masks them with the
object's segmentation, so the local tokens describe the object and not the background.
The result is saved in ELITE's `local_mapper.pt` layout, read back by `load_local_mapper`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..files import atomic_path
from ..models.elite import cross_attention_paths, injected_words
from ..models.elite_local import LocalMapping, load_local_mapper, local_mapping, local_tokens
from ..models.loading import load_pipeline
from ..models.word_encoder import WordEncoder, load_word_encoder
from ..world.scenes import sample_scene, scenes_to_tensor
from .checkpoint import load_state, save_state
from .denoising import denoising_loss

MAPPER_FILE = "local_mapper.pt"


@dataclass(frozen=True)
class LocalTrainingConfig:
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 3e-4
    warmup_steps: int = 50
    hidden: int = 128
    strength: float = 1.0  # lambda of the local term
    template: str = "a S*"
    placeholder: str = "S*"
    min_snr_gamma: float = 5.0
    checkpoint_every: int = 250
    seed: int = 0


def new_local_mapper(encoder: WordEncoder, unet: nn.Module, hidden: int) -> tuple[LocalMapping, dict[str, tuple[nn.Linear, nn.Linear]]]:
    """A fresh local mapping and per-layer projections copied from each layer's to_k / to_v."""
    mapper = LocalMapping(encoder.config.width, encoder.config.text_width, n_layers=encoder.config.n_words, hidden=hidden)
    projections = {}
    for path in cross_attention_paths(unet).values():
        layer = unet.get_submodule(path)
        pair = []
        for source in (layer.to_k, layer.to_v):
            linear = nn.Linear(source.in_features, source.out_features, bias=False)
            linear.weight.data.copy_(source.weight.data)
            pair.append(linear)
        projections[path] = (pair[0], pair[1])
    return mapper, projections


def mapper_state(mapper: LocalMapping, projections: dict[str, tuple[nn.Linear, nn.Linear]]) -> dict[str, torch.Tensor]:
    """ELITE's local_mapper.pt layout: mapping_{i}.*, mapping_patch_{i}.* and per layer
    `<path with underscores>_to_k.weight` / `_to_v.weight`."""
    state = {k: v.detach().clone() for k, v in mapper.state_dict().items()}
    for path, (to_k, to_v) in projections.items():
        prefix = path.replace(".", "_")
        state[f"{prefix}_to_k.weight"] = to_k.weight.detach().clone()
        state[f"{prefix}_to_v.weight"] = to_v.weight.detach().clone()
    return state


def train_local_mapping(
    out: str | Path, cfg: LocalTrainingConfig = LocalTrainingConfig(), encoder: str | Path = "shapes", pipeline: str = "shapes",
) -> Path:
    """Train (or resume from OUT/checkpoint.pt); writes OUT/local_mapper.pt and returns its path."""
    if cfg.strength <= 0:
        raise ValueError(f"strength must be > 0, got {cfg.strength}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = load_pipeline(pipeline)
    word_encoder = load_word_encoder(encoder).requires_grad_(False)
    for module in (pipe.unet, pipe.text_encoder):
        module.requires_grad_(False)
    checkpoint = out / "checkpoint.pt"
    state = load_state(checkpoint) if checkpoint.exists() else None
    if state:
        config = word_encoder.config
        mapper, projections = load_local_mapper(out / MAPPER_FILE, pipe.unet, config.width, config.text_width, cfg.hidden)
    else:
        torch.manual_seed(cfg.seed)
        mapper, projections = new_local_mapper(word_encoder, pipe.unet, cfg.hidden)
    parameters = list(mapper.parameters()) + [p for pair in projections.values() for linear in pair for p in linear.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=cfg.learning_rate)
    start = 0
    if state:
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    (out / "config.json").write_text(json.dumps({"training": asdict(cfg), "encoder": str(encoder), "pipeline": pipeline}, indent=1))
    log = (out / "log.jsonl").open("a")
    tic = time.perf_counter()
    for step in tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train local mapping"):
        rng = np.random.default_rng([cfg.seed, step])
        scenes = [sample_scene(rng, 1, word_encoder.config.image_size, "train") for _ in range(cfg.batch_size)]
        images = scenes_to_tensor(scenes)
        masks = torch.from_numpy(np.stack([s.object_masks.any(axis=0) for s in scenes]))
        with torch.no_grad():
            features = word_encoder.features((images + 1) / 2)
            words = word_encoder.mapping(features)
        tokens = local_tokens(mapper, features, masks, word_encoder.config.patch_size)
        with injected_words(pipe, words, cfg.placeholder), local_mapping(pipe, projections, tokens, cfg.placeholder, cfg.strength):
            context = pipe.text_encoder(pipe.tokenize([cfg.template] * len(scenes)))[0]
            generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            loss = denoising_loss(pipe.unet, pipe.scheduler, images, context, generator, cfg.min_snr_gamma)
        for group in optimizer.param_groups:
            group["lr"] = cfg.learning_rate * min(1.0, (step + 1) / cfg.warmup_steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        log.write(json.dumps({"step": step + 1, "loss": loss.item(), "seconds": time.perf_counter() - tic}) + "\n")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            log.flush()
            with atomic_path(out / MAPPER_FILE) as tmp:
                torch.save(mapper_state(mapper, projections), tmp)
            save_state({"step": step + 1, "optimizer": optimizer.state_dict()}, checkpoint)
    log.close()
    return out / MAPPER_FILE
