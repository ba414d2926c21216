"""One function per analysis section: compute with the public API, write tables (Parquet) and
tensors (safetensors) into the part's folder, return a short summary for run.json; and, for
the sections whose inputs are files, a check that builds them before anything is written.

Each gets the run's `Context` (the model and inputs, loaded once) and the section's settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from ..analyses import analyse_attention, compare_words
from ..analyses.primary_auxiliary import words_of
from ..analyses.regions import MaskFolderError, object_mask_folder
from ..concepts import run_tcav, sets_from_pool
from ..capture.activations import resolve_module
from ..concepts.pipeline_io import default_image_size, default_layers
from ..pipelines.elite import ELITE_FEATURE_LAYERS, ELITEEncoder, load_global_mapper
from ..pipelines.embeddings import read_embeddings
from ..pipelines.image_input import IMAGE_SUFFIXES, image_files
from ..projection import Projection
from .sources import is_source, load_target, read_source
from .context import Context
from .diff import check_diff, diff
from .spec import ProbeError


def _table(frame: pd.DataFrame, folder: Path, name: str) -> None:
    frame.to_parquet(folder / f"{name}.parquet", index=False)


def attention(ctx: Context, settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    layers = settings["layers"]
    result = analyse_attention(ctx.pipe, ctx.prompts(), layers=layers, per_step=settings["per_step"], regions=ctx.regions,
                               concepts=settings["concepts"] or None, maps=settings["maps"], **ctx.generation)
    result.maps.save(folder / "maps.safetensors")
    if result.concept_maps is not None and result.space == "raw":  # kept beside the scored raw maps
        result.concept_maps.save(folder / "concept_maps.safetensors")
    save_file({"images": torch.from_numpy(np.ascontiguousarray(result.images))}, str(folder / "images.safetensors"))
    for name in ("leakage", "localisation", "overlap"):
        _table(getattr(result, name), folder, name)
    summary = {"heat_layers": result.heat_layers, "prompts": len(result.images), "regions": result.regions_note, "maps": result.space}
    if len(result.localisation):
        summary["mean_iou_by_role"] = result.localisation.groupby("role").iou.mean().round(4).to_dict()
    return summary


def _word_source(ctx: Context, settings: dict[str, Any]):
    """An encoder: ELITE on a CLIP vision model (whose key/value projections are loaded into the
    UNet for the whole run), or one the embedded world names (ShapesWorld's "shapes" or a saved one)."""
    name = settings["encoder"]
    if not name.startswith("elite:"):
        return ctx.world.word_encoder(name)
    if settings["vision"] is None:
        raise ValueError('encoder = "elite:..." needs vision = "FOLDER" (its CLIP vision model, saved with save_pretrained)')
    from transformers import CLIPVisionModel

    try:
        vision = CLIPVisionModel.from_pretrained(settings["vision"], local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"vision {settings['vision']!r} is not a CLIP vision model folder ({str(error).splitlines()[0]})") from None
    width = ctx.pipe.text_encoder.get_input_embeddings().embedding_dim
    mapper = load_global_mapper(name.removeprefix("elite:"), ctx.pipe.unet, vision.config.hidden_size, width, settings["mapper_hidden"])
    return ELITEEncoder(vision, mapper, ELITE_FEATURE_LAYERS[: mapper.n_words]).eval()


def _comparison_inputs(ctx: Context, settings: dict[str, Any]) -> dict[str, Any]:
    """compare_words' words (or encoder), images, labels and object masks, as the section names
    them: the user's files, or the embedded world's scenes on its model."""
    if settings["embeddings"]:
        inputs: dict[str, Any] = {"words": words_of([read_embeddings(path) for path in settings["embeddings"]])}
        n = len(settings["embeddings"])
    elif settings["image_folder"] is not None:
        files = image_files(settings["image_folder"])
        if not files:
            raise ValueError(f"image_folder {settings['image_folder']} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        inputs, n = {"words": _word_source(ctx, settings), "images": files}, len(files)
    else:
        return {"words": _word_source(ctx, settings), **ctx.world.comparison_inputs(settings["images"], ctx.probe.seed)}
    if settings["labels"] is not None:
        path = Path(settings["labels"])
        if not path.is_file():
            raise ValueError(f"labels {path} does not exist")
        labels = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        if len(labels) != n:
            raise ValueError(f"labels {path} has {len(labels)} rows for {n} examples; give one row per example, in file-name order")
        inputs["labels"] = labels
    if settings["masks"] is not None:
        inputs["object_masks"] = object_mask_folder(settings["masks"], n)
    return inputs


def check_primary_auxiliary(ctx: Context, settings: dict[str, Any]) -> None:
    """Refuse a [primary_auxiliary] section that cannot run on this model, before anything is written."""
    where = f"{ctx.probe.source}: [primary_auxiliary]"
    own = settings["embeddings"] or settings["image_folder"] is not None
    if not ctx.world and not own:
        raise ProbeError(f"{where} encodes the embedded world's scenes by default, which this {type(ctx.pipe).__name__} is not for; "
                         "give image_folder = \"FOLDER\" with encoder = \"elite:...\" (and vision), or embeddings = [...]")
    if not ctx.world and not settings["embeddings"] and not settings["encoder"].startswith("elite:"):
        raise ProbeError(f"{where} encoder = {settings['encoder']!r} makes words for an embedded world's model; give encoder = \"elite:...\" for this model")
    try:
        ctx.prepared["primary_auxiliary"] = _comparison_inputs(ctx, settings)
    except (ValueError, FileNotFoundError, MaskFolderError) as error:
        raise ProbeError(f"{where} {error}") from None


def primary_auxiliary(ctx: Context, settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    inputs = ctx.prepared.get("primary_auxiliary") or _comparison_inputs(ctx, settings)
    result = compare_words(ctx.pipe, **inputs, template=settings["template"], steps=ctx.probe.model["steps"],
                           guidance_scale=ctx.generation.get("guidance_scale"), seed=ctx.probe.seed, batch_size=32)
    save_file({"words": torch.from_numpy(result.words).float(), "generated": torch.from_numpy(np.ascontiguousarray(result.generated))},
              str(folder / "words.safetensors"))
    _table(result.to_frame(), folder, "words")
    _table(result.nearest, folder, "nearest")
    _table(pd.DataFrame(result.cosine, index=result.names, columns=result.names).reset_index(names="word"), folder, "cosine")
    if result.probes is not None:
        _table(result.probes.to_frame(), folder, "probe_leakage")
    if "labels" in inputs:
        _table(inputs["labels"], folder, "factors")
    (folder / "disentanglement.json").write_text(json.dumps(result.disentanglement, indent=1))
    (folder / "absent.json").write_text(json.dumps(result.absent, indent=1))
    scores = {k: round(v, 4) for k, v in (result.disentanglement or {}).items()}
    return {"words": result.names, "examples": len(result.words), **scores, "absent": result.absent}


def _tcav_inputs(ctx: Context, settings: dict[str, Any]):
    """(target, explained inputs, concepts, random sets): from the user's sources and target
    file, or, where the section keeps the defaults, from the embedded world (e.g. ShapesWorld's
    scenes and classifier)."""
    n, seed = settings["examples"], ctx.probe.seed
    size = default_image_size(ctx.pipe)[0]
    if ".py:" in settings["target"]:
        target = load_target(settings["target"])
    else:
        target = ctx.world.target(settings["target"])
    concepts = [read_source(spec, size) if is_source(spec) else ctx.world.concept(spec, n, seed + i)
                for i, spec in enumerate(settings["concepts"])]
    if settings["random_pool"] is not None:
        randoms = sets_from_pool(read_source(settings["random_pool"], size), settings["random_runs"], n, seed=seed)
    else:
        randoms = ctx.world.random_sets(settings["random_runs"], n, seed)
    if settings["explained"] is not None:
        inputs = read_source(settings["explained"], size)
    else:
        inputs = ctx.world.explained(settings["target"], settings["inputs"], seed + 999)
    return target, inputs, concepts, randoms


def check_attention(ctx: Context, settings: dict[str, Any]) -> None:
    """Refuse layers this model lacks, or concept maps it cannot make, before anything is written."""
    from ..capture import trace

    try:
        trace(ctx.pipe, layers=settings["layers"], concepts=settings["concepts"] or None)  # refuses on construction
    except ValueError as error:
        raise ProbeError(f"{ctx.probe.source}: [attention] {error}") from None


def check_tcav(ctx: Context, settings: dict[str, Any]) -> None:
    """Refuse a [tcav] section that cannot run on this model, before anything is written."""
    where = f"{ctx.probe.source}: [tcav]"
    if not ctx.world:
        world_only = ["target"] if ".py:" not in settings["target"] else []
        world_only += [f"concepts ({spec!r})" for spec in settings["concepts"] if not is_source(spec)]
        world_only += [key for key in ("random_pool", "explained") if settings[key] is None]
        if world_only:
            raise ProbeError(f"{where} {', '.join(world_only)}: this {type(ctx.pipe).__name__} is not an embedded world's model, "
                             "so name your own: target = \"FILE.py:FUNCTION\", concepts and random_pool and explained as "
                             "\"images:FOLDER\" or \"prompts:FILE\"")
    try:
        for layer in _tcav_layers(ctx, settings):
            resolve_module(ctx.pipe, layer)
        ctx.prepared["tcav"] = _tcav_inputs(ctx, settings)
    except ValueError as error:
        raise ProbeError(f"{where} {error}") from None


def _tcav_layers(ctx: Context, settings: dict[str, Any]) -> list[str]:
    return settings["layers"] if settings["layers"] is not None else default_layers(ctx.pipe)


def tcav(ctx: Context, settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    target, inputs, concepts, randoms = ctx.prepared.get("tcav") or _tcav_inputs(ctx, settings)
    report = run_tcav(ctx.pipe, target, inputs, concepts, randoms, layers=_tcav_layers(ctx, settings), timestep=settings["timestep"],
                      method=settings["method"], alpha=settings["alpha"], seed=ctx.probe.seed, cache_dir=ctx.run_dir / "cache")
    frame = report.to_frame()
    _table(frame, folder, "scores")
    return {"significant": int(frame.significant.sum()), "tested": len(frame), "random_runs": len(randoms)}


def projection(ctx: Context, settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    proj = Projection(n_neighbors=settings["neighbors"], metric=settings["metric"], random_state=ctx.probe.seed)
    if settings["bank"] == "learned-words":
        words = load_file(str(ctx.run_dir / "primary_auxiliary" / "words.safetensors"))["words"].numpy()
        # the object's position bins would clash with the projection's own x, y columns
        table = ctx.run_dir / "primary_auxiliary" / "factors.parquet"
        factors = pd.read_parquet(table).rename(columns={"x": "object_x", "y": "object_y"}) if table.is_file() else pd.DataFrame()
        n_images, n_words, _ = words.shape
        names = ["w0 (primary)"] + [f"w{i} (auxiliary)" for i in range(1, n_words)]
        labels = {"word": np.tile(names, n_images), **{c: np.repeat(factors[c].to_numpy(), n_words) for c in factors.columns}}
        proj.fit(words.reshape(n_images * n_words, -1), labels=labels)
    else:
        table = ctx.pipe.text_encoder.get_input_embeddings().weight.detach().float().cpu().numpy()
        tokens = ctx.pipe.tokenizer.convert_ids_to_tokens(list(range(len(table))))
        learned = set(ctx.pipe.tokenizer.get_added_vocab()) - set(ctx.pipe.tokenizer.all_special_tokens)
        kind = ctx.world.token_kind if ctx.world else (lambda token: "other")
        proj.fit(table, labels={"token": tokens, "kind": ["learned word" if t in learned else kind(t) for t in tokens]})
    frame = proj.to_frame()
    _table(frame, folder, "points")
    return {"points": len(frame), "bank": settings["bank"]}


CHECKS: dict[str, Callable[[Context, dict[str, Any]], None]] = {
    "attention": check_attention,
    "primary_auxiliary": check_primary_auxiliary,
    "tcav": check_tcav,
    "diff": check_diff,
}
PARTS: dict[str, Callable[[Context, dict[str, Any], Path], dict[str, Any]]] = {
    "attention": attention,
    "primary_auxiliary": primary_auxiliary,
    "tcav": tcav,
    "diff": diff,
    "projection": projection,
}
