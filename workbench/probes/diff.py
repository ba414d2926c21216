"""The [diff] section: the probe's model compared word by word with other models.

    [diff]
    against = ["checkpoints/fine-tuned", "lora:loras/my-style.safetensors"]

Each entry is a pipeline (a folder, or an embedded model's name), loaded as it is (the probe's
learned words go into the probe's own model only), or "lora:FILE", the probe's own model with
that LoRA loaded. Every other model is loaded, and each LoRA checked against the
model, before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from ..analyses import compare_models
from ..pipelines.lora import LoraFileError, load_lora
from .context import Context, load_model
from .spec import ProbeError


def label(entry: str) -> str:
    """How an entry is named in tables and figures: the folder's name, or "+ LoRA name"."""
    if entry.startswith("lora:"):
        return f"+ LoRA {Path(entry[5:]).stem}"
    return Path(entry).name or entry


def _other(ctx: Context, entry: str):
    if entry.startswith("lora:"):
        other = load_model(ctx.probe.model, ctx.probe.source)  # a second copy of the probe's model, then its LoRA
        load_lora(other, entry[5:])
        return other
    return load_model({**ctx.probe.model, "pipeline": entry, "embeddings": []}, ctx.probe.source)  # as it is: the probe's words are its own model's


def check_diff(ctx: Context, settings: dict[str, Any]) -> None:
    """Load every model to compare with, before anything is written."""
    others = {}
    for entry in settings["against"]:
        try:
            others[entry] = _other(ctx, entry)
        except (LoraFileError, ProbeError) as error:
            raise ProbeError(f"{ctx.probe.source}: [diff] against {entry!r}: {error}") from None
    names = [label(entry) for entry in others]
    if len(set(names)) != len(names):
        raise ProbeError(f"{ctx.probe.source}: [diff] against: two entries have the same name ({', '.join(names)}); name the folders apart")
    ctx.prepared["diff"] = others


def diff(ctx: Context, settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    if "diff" not in ctx.prepared:
        check_diff(ctx, settings)
    prompts = ctx.prompts()
    generation = ctx.generation
    words, embeddings, differences, images = [], [], {}, {}
    for k, (entry, other) in enumerate(ctx.prepared["diff"].items()):
        name = label(entry)
        result = compare_models(ctx.pipe, other, prompts, names=("base", name), steps=generation["steps"],
                                guidance_scale=generation.get("guidance_scale"), seed=ctx.probe.seed, regions=ctx.regions)
        words.append(result.words.assign(against=name))
        embeddings.append(result.embeddings.assign(against=name))
        differences[name] = result.differences
        if k == 0:
            result.maps["base"].save(folder / "maps-base.safetensors")
            images["base"] = torch.from_numpy(np.ascontiguousarray(result.images["base"]))
        result.maps[name].save(folder / f"maps-{k}.safetensors")
        images[f"against-{k}"] = torch.from_numpy(np.ascontiguousarray(result.images[name]))
    frame = pd.concat(words, ignore_index=True)
    frame.to_parquet(folder / "words.parquet", index=False)
    pd.concat(embeddings, ignore_index=True).to_parquet(folder / "embeddings.parquet", index=False)
    save_file(images, str(folder / "images.safetensors"))
    (folder / "against.json").write_text(json.dumps({"entries": settings["against"], "names": [label(e) for e in settings["against"]],
                                                     "differences": differences}, indent=1))
    changed = frame.groupby("against").heat_overlap.mean().round(4).to_dict()
    return {"against": list(changed), "mean_heat_overlap": changed, "prompts": len(prompts)}
