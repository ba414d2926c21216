"""`workbench demo`: the shipped probes on the embedded default, one dashboard for all of them.

Writes OUT/grid.png (held-out captions: ground truth | masks | what the model draws), runs
every probes/*.toml into OUT/runs/NAME (resuming finished parts on a rerun) and writes
OUT/dashboard.html with the grid and every run's figures.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import plotly.express as px
import torch
from PIL import Image

from workbench.pipelines import load_pipeline
from workbench.probes import run_probe, run_sections, run_settings
from workbench.viz import Section, write_dashboard
from workbench.viz.grid import scene_grid

from .data import shipped
from .scenes import sample_scenes, scenes_frame


def probes_dir() -> Path:
    """The shipped probe files: $WORKBENCH_PROBES, else the ones shipped (`probes/`)."""
    override = os.environ.get("WORKBENCH_PROBES")
    return Path(override) if override else shipped("shipped_probes", "probes")


def write_grid(out: Path, count: int = 8, seed: int = 0, steps: int = 25) -> Path:
    """grid.png (caption | ground truth | masks | generated) and scenes.csv for held-out scenes."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    scenes = sample_scenes(count, seed=seed, split="test")
    captions = [s.caption for s in scenes]
    pipe = load_pipeline("shapes")
    pipe.set_progress_bar_config(leave=False)
    generated = pipe(captions, generator=torch.Generator().manual_seed(seed), num_inference_steps=steps, output_type="np").images
    generated = (generated * 255).round().astype(np.uint8)
    out.mkdir(parents=True, exist_ok=True)
    grid_path = out / "grid.png"
    scene_grid(captions, [s.image for s in scenes], [s.object_masks for s in scenes], generated).save(grid_path)
    scenes_frame(scenes).to_csv(out / "scenes.csv", index=False)
    return grid_path


def run_demo(out: str | Path = "outputs/demo", count: int = 8, seed: int = 0, steps: int = 25, probes: str | Path | None = None) -> Path:
    """Run the demo into `out`; returns the dashboard's path. `probes`: a folder of probe files
    (default: probes_dir()).

    Raises:
        FileNotFoundError: no probe files in probes_dir().
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a folder; choose another --out")
    folder = Path(probes) if probes is not None else probes_dir()
    probe_files = sorted(folder.glob("*.toml"))
    if not probe_files:
        raise FileNotFoundError(f"no probe files (*.toml) in {folder}; expected the shipped probes/ or a folder given with --probes")
    tic = time.perf_counter()
    grid_path = write_grid(out, count=count, seed=seed, steps=steps)
    picture = np.asarray(Image.open(grid_path).convert("RGB"))
    sections = [Section("Held-out captions: ground truth, masks and what the model draws",
                        px.imshow(picture).update_xaxes(visible=False).update_yaxes(visible=False)
                        .update_layout(height=picture.shape[0] + 60, width=picture.shape[1] + 60, margin=dict(l=0, r=0, t=30, b=0)),
                        "These factor combinations were never shown in training.")]
    settings: dict[str, object] = {}
    for probe_file in probe_files:
        record, found = run_sections(run_probe(probe_file, out / "runs" / probe_file.stem, dashboard=True))
        name = record["settings"]["name"]
        sections += [Section(f"{name} | {s.heading}", s.figure, s.note) for s in found]
        settings[name] = run_settings(record)
    settings["demo seconds"] = round(time.perf_counter() - tic, 1)
    return write_dashboard(out / "dashboard.html", "concept-workbench demo: the shipped probes on ShapesWorld", sections, settings)
