"""Fine-tune the ShapesWorld model on a shifted palette (`workbench world shift-palette`): every
object colour is drawn as the next colour of the palette (red as green, green as blue, ...)
while the captions stay as they were, learned by a LoRA on the UNet's attention. The text
encoder is untouched, so a model comparison should find the words unchanged, their heat maps on
the same objects, and what is drawn for each colour word changed: a fine-tune whose effect is
known, for the model-diff audits.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from workbench.files import atomic_path

from ..scenes import sample_scene, scenes_to_tensor
from ..vocabulary import COLORS
from .lora_word import lora_weights, train_lora


@dataclass(frozen=True)
class PaletteShiftConfig:
    shift: int = 1  # each colour is drawn as the colour `shift` places later in the palette
    steps: int = 300
    batch_size: int = 8
    learning_rate: float = 1e-3
    rank: int = 4
    two_object_fraction: float = 0.5
    min_snr_gamma: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.shift % len(COLORS) == 0:
            raise ValueError(f"shift {self.shift} draws every colour as itself; give 1 to {len(COLORS) - 1}")

    def drawn_as(self, color: str) -> str:
        """The colour a shifted model draws for the word `color`."""
        names = list(COLORS)
        return names[(names.index(color) + self.shift) % len(names)]


def shifted_batch(cfg: PaletteShiftConfig, rng: np.random.Generator, image_size: int) -> tuple[torch.Tensor, list[str]]:
    """Training-split scenes drawn with the shifted palette, captioned with their true colours:
    (images (batch, 3, y, x) in [-1, 1], captions)."""
    scenes, captions = [], []
    for _ in range(cfg.batch_size):
        scene = sample_scene(rng, 2 if rng.random() < cfg.two_object_fraction else 1, image_size, "train")
        captions.append(scene.caption)
        scenes.append(dataclasses.replace(scene, objects=tuple(dataclasses.replace(o, color=cfg.drawn_as(o.color)) for o in scene.objects)))
    return scenes_to_tensor(scenes), captions


def shift_palette(pipe, cfg: PaletteShiftConfig = PaletteShiftConfig()) -> dict:
    """Fine-tune `pipe` (a UNet ShapesWorld pipeline) in place with a LoRA on the shifted palette;
    returns a summary (steps, seconds, losses, config)."""
    summary = train_lora(pipe, lambda rng: shifted_batch(cfg, rng, pipe.unet.config.sample_size), cfg.steps, cfg.rank,
                         cfg.learning_rate, cfg.min_snr_gamma, cfg.seed, desc=f"shift palette by {cfg.shift}")
    return summary | {"config": dataclasses.asdict(cfg)}


def shift_to_folder(pipeline: str | Path, out: str | Path, cfg: PaletteShiftConfig = PaletteShiftConfig()) -> Path:
    """Shift the pipeline's palette (a folder or "shapes") and write, atomically,
    OUT/lora.safetensors (load with `pipelines.load_lora`) and OUT/shift.json."""
    from workbench.pipelines.loading import load_pipeline

    pipe = load_pipeline(pipeline)
    summary = shift_palette(pipe, cfg)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        save_file(lora_weights(pipe), str(tmp / "lora.safetensors"))
        (tmp / "shift.json").write_text(json.dumps(summary, indent=1))
    return Path(out)
