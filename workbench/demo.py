"""`workbench demo`: held-out ShapesWorld scenes next to what the embedded model draws for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .models.loading import load_pipeline
from .viz.grid import scene_grid
from .world.scenes import sample_scenes, scenes_frame


def run_demo(out: str | Path = "outputs/demo", count: int = 8, seed: int = 0, steps: int = 25) -> Path:
    """Write grid.png (caption | ground truth | masks | generated) and scenes.csv into `out`.

    Captions come from the held-out split, so the model has never seen these combinations.
    Returns the path of grid.png.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scenes = sample_scenes(count, seed=seed, split="test")
    captions = [s.caption for s in scenes]
    pipe = load_pipeline("shapes")
    generator = torch.Generator().manual_seed(seed)
    generated = pipe(captions, generator=generator, num_inference_steps=steps, output_type="np").images
    generated = (generated * 255).round().astype(np.uint8)
    grid = scene_grid(captions, [s.image for s in scenes], [s.object_masks for s in scenes], generated)
    grid_path = out / "grid.png"
    grid.save(grid_path)
    scenes_frame(scenes).to_csv(out / "scenes.csv", index=False)
    return grid_path
