"""One function per analysis section: compute with the public API, write tables (Parquet) and
tensors (safetensors) into the part's folder, return a short summary for run.json.

Each gets the run's `Context` (the model and inputs, loaded once and only when a part needs
them) and the section's settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from ..analyses import analyse_attention, compare_words
from ..analyses.primary_auxiliary import scene_factors
from ..concepts import from_query, random_sets, run_tcav
from ..concepts.concept_sets import parse_query
from ..models.classifier import ShapesClassifier
from ..models.loading import embedded_path, load_pipeline
from ..models.word_encoder import load_word_encoder
from ..projection import Projection
from ..world.scenes import sample_scenes
from ..world.vocabulary import BACKGROUNDS, COLORS, SHAPES, SIZES
from .spec import Probe


@dataclass
class Context:
    probe: Probe
    run_dir: Path

    @cached_property
    def pipe(self):
        pipe = load_pipeline(self.probe.model["pipeline"], device=self.probe.model["device"])
        pipe.set_progress_bar_config(leave=False)
        return pipe

    def prompts(self) -> list[str]:
        inputs = self.probe.inputs
        if inputs["prompts"]:
            return list(inputs["prompts"])
        scenes = sample_scenes(inputs["scenes"], seed=self.probe.seed, split=inputs["split"], n_objects=inputs["objects"])
        return [s.caption for s in scenes]

    @property
    def generation(self) -> dict[str, Any]:
        return {"steps": self.probe.model["steps"], "guidance_scale": self.probe.model["guidance_scale"], "seed": self.probe.seed}


def _table(frame: pd.DataFrame, folder: Path, name: str) -> None:
    frame.to_parquet(folder / f"{name}.parquet", index=False)


def attention(ctx: Context, settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    layers = settings["layers"]
    result = analyse_attention(ctx.pipe, ctx.prompts(), layers=layers, per_step=settings["per_step"], **ctx.generation)
    result.maps.save(folder / "maps.safetensors")
    save_file({"images": torch.from_numpy(np.ascontiguousarray(result.images))}, str(folder / "images.safetensors"))
    for name in ("leakage", "localisation", "overlap"):
        _table(getattr(result, name), folder, name)
    summary = {"heat_layers": result.heat_layers, "prompts": len(result.images)}
    if len(result.localisation):
        summary["mean_iou_by_role"] = result.localisation.groupby("role").iou.mean().round(4).to_dict()
    return summary


def primary_auxiliary(ctx: Context, settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    encoder = load_word_encoder(settings["encoder"])
    scenes = sample_scenes(settings["images"], seed=ctx.probe.seed, split="test", n_objects=1)
    result = compare_words(ctx.pipe, encoder, scenes, template=settings["template"], steps=ctx.probe.model["steps"],
                           guidance_scale=ctx.probe.model["guidance_scale"], seed=ctx.probe.seed)
    save_file({"words": torch.from_numpy(result.words).float(), "generated": torch.from_numpy(np.ascontiguousarray((result.generated * 255).round().astype(np.uint8)))},
              str(folder / "words.safetensors"))
    _table(result.to_frame(), folder, "words")
    _table(result.probes.to_frame(), folder, "probe_leakage")
    _table(result.nearest, folder, "nearest")
    _table(pd.DataFrame(result.cosine, index=result.names, columns=result.names).reset_index(names="word"), folder, "cosine")
    _table(scene_factors(scenes), folder, "factors")
    (folder / "disentanglement.json").write_text(json.dumps(result.disentanglement, indent=1))
    return {"words": result.names, "images": len(scenes), **{k: round(v, 4) for k, v in result.disentanglement.items()}}


def tcav(ctx: Context, settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    head, value = _target(settings["target"])
    classifier = ShapesClassifier.from_pretrained(embedded_path("shapes-classifier"))
    n, seed = settings["examples"], ctx.probe.seed
    concepts = [from_query(query, query, n, seed=seed + i) for i, query in enumerate(settings["concepts"])]
    inputs = from_query(f"inputs ({settings['target']})", settings["target"], settings["inputs"], seed=seed + 999)
    frame = run_tcav(ctx.pipe, classifier, (head, value), inputs, concepts, random_sets(settings["random_runs"], n, seed=seed),
                     layers=settings["layers"], timestep=settings["timestep"], method=settings["method"], alpha=settings["alpha"],
                     seed=seed, cache_dir=ctx.run_dir / "cache")
    _table(frame, folder, "scores")
    return {"significant": int(frame.significant.sum()), "tested": len(frame)}


def _target(text: str) -> tuple[str, str]:
    query = parse_query(text)
    if len(query) != 1:
        raise ValueError(f"[tcav] target must name one classifier class as head=class (e.g. 'color=red'), got {text!r}")
    return next(iter(query.items()))


def projection(ctx: Context, settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    proj = Projection(n_neighbors=settings["neighbors"], metric=settings["metric"], seed=ctx.probe.seed)
    if settings["bank"] == "learned-words":
        words = load_file(str(ctx.run_dir / "primary_auxiliary" / "words.safetensors"))["words"].numpy()
        # the object's position bins would clash with the projection's own x, y columns
        factors = pd.read_parquet(ctx.run_dir / "primary_auxiliary" / "factors.parquet").rename(columns={"x": "object_x", "y": "object_y"})
        n_images, n_words, _ = words.shape
        names = ["w0 (primary)"] + [f"w{i} (auxiliary)" for i in range(1, n_words)]
        labels = {"word": np.tile(names, n_images), **{c: np.repeat(factors[c].to_numpy(), n_words) for c in factors.columns}}
        proj.fit(words.reshape(n_images * n_words, -1), labels=labels)
    else:
        table = ctx.pipe.text_encoder.get_input_embeddings().weight.detach().float().cpu().numpy()
        tokens = ctx.pipe.tokenizer.convert_ids_to_tokens(list(range(len(table))))
        proj.fit(table, labels={"token": tokens, "kind": [_token_kind(t) for t in tokens]})
    frame = proj.to_frame()
    _table(frame, folder, "points")
    return {"points": len(frame), "bank": settings["bank"]}


def _token_kind(token: str) -> str:
    for kind, words in (("color", COLORS), ("shape", SHAPES), ("size", SIZES), ("background", BACKGROUNDS)):
        if token in words:
            return kind
    return "other"


PARTS: dict[str, Callable[[Context, dict[str, Any], Path], dict[str, Any]]] = {
    "attention": attention,
    "primary_auxiliary": primary_auxiliary,
    "tcav": tcav,
    "projection": projection,
}
