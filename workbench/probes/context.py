"""A probe run's model and inputs, loaded once, and checked before anything is written."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ..analyses.generation import generation_options
from ..analyses.regions import MaskFolderError, RegionSource, UnsupervisedRegions, mask_folder
from ..pipelines.embeddings import EmbeddingFileError, insert_embeddings, read_embeddings
from ..pipelines.loading import PipelineLoadError, load_pipeline
from ..worlds import EmbeddedWorld, world_of
from .spec import Probe, ProbeError

# [model] keys that are options of the pipeline's call
GENERATION_KEYS = ("guidance_scale", "height", "width", "negative_prompt", "use_resolution_binning")


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model(model: dict[str, Any], source: str):
    """The pipeline a probe's [model] section names, its learned words inserted.

    Raises:
        ProbeError: naming the probe file and what could not be loaded.
    """
    try:
        pipe = load_pipeline(model["pipeline"], device=model["device"], dtype=getattr(torch, model["dtype"]))
        insert_embeddings(pipe, [word for path in model["embeddings"] for word in read_embeddings(path)])
    except (PipelineLoadError, EmbeddingFileError, FileNotFoundError) as error:
        raise ProbeError(f"{source}: [model] {error}") from None
    pipe.set_progress_bar_config(leave=False)
    return pipe


def model_identity(model: dict[str, Any]) -> str:
    """What makes two [model] sections the same model: pipeline, device, dtype, learned-word files."""
    return json.dumps([model["pipeline"], model["device"], model["dtype"], [str(p) for p in model["embeddings"]]])


class ModelCache:
    """Pipelines loaded once and served to every probe run that names the same model
    (pipeline, device, dtype and learned-word files): a sweep's cells of one checkpoint share it.
    Analyses never change a pipeline for good (learned words are inserted only at loading)."""

    def __init__(self):
        self.models: dict[str, Any] = {}
        self.loads = 0

    def get(self, model: dict[str, Any], source: str):
        key = model_identity(model) + json.dumps([sha256_of(p) for p in model["embeddings"]])  # a file changed on disk is another model
        if key not in self.models:
            self.models[key] = load_model(model, source)
            self.loads += 1
        return self.models[key]


@dataclass
class Context:
    """The run's model and inputs, loaded once; `check()` validates them before anything is
    written. `given_pipe` is a pipeline already in memory (its words inserted) that replaces
    [model] pipeline and embeddings; `models` serves pipelines loaded for earlier runs."""

    probe: Probe
    run_dir: Path
    given_pipe: Any = None
    prepared: dict[str, Any] = field(default_factory=dict)  # inputs a check already built, by part
    models: ModelCache | None = None

    @cached_property
    def pipe(self):
        if self.given_pipe is not None:
            return self.given_pipe
        if self.models is not None:
            return self.models.get(self.probe.model, self.probe.source)
        return load_model(self.probe.model, self.probe.source)

    @cached_property
    def world(self) -> EmbeddedWorld | None:
        """The embedded world whose model this is (its captions, regions, concepts, classifier
        and encoder are the defaults), or None for a user's model."""
        return world_of(self.pipe)

    def prompts(self) -> list[str]:
        inputs = self.probe.inputs
        if inputs["prompts"]:
            return list(inputs["prompts"])
        return self.world.prompts(inputs["scenes"], self.probe.seed, inputs["split"], inputs["objects"])

    @cached_property
    def regions(self) -> RegionSource | None:
        """The user's mask folder, or regions found without labels if asked, else the embedded
        world's own regions on its model."""
        if self.probe.inputs["unsupervised_regions"]:
            return UnsupervisedRegions()
        if self.probe.inputs["masks"] is not None:
            try:
                return mask_folder(self.probe.inputs["masks"], self.prompts())
            except MaskFolderError as error:
                raise ProbeError(f"{self.probe.source}: [inputs] masks: {error}") from None
        return self.world.regions() if self.world else None

    @cached_property
    def generation(self) -> dict[str, Any]:
        """steps, seed and the pipeline options, guidance_scale resolved to the pipeline's own
        default when the probe leaves it unset.

        Raises:
            ProbeError: an option the pipeline does not take.
        """
        model = self.probe.model
        try:
            options = generation_options(self.pipe, **{key: model[key] for key in GENERATION_KEYS})
        except ValueError as error:
            raise ProbeError(f"{self.probe.source}: [model] {error}") from None
        return {"steps": model["steps"], "seed": self.probe.seed, **options}

    def check(self) -> None:
        """Load the model and its inputs and refuse what cannot run on it, before the run
        directory is touched (each section's own inputs: `parts.CHECKS`).

        Raises:
            ProbeError: naming the probe file, the section and why.
        """
        _ = self.generation  # the model loads, and every option set is one it takes
        if self.probe.inputs["scenes"] and not self.world:
            raise ProbeError(f"{self.probe.source}: [inputs] scenes are captions of an embedded world for its own model; give this "
                             f"{type(self.pipe).__name__} prompts = [...] (and masks = \"folder\" for leakage)")
        _ = self.regions  # a mask folder is checked against the prompts now

    def model_record(self) -> dict[str, Any]:
        """What run.json keeps of the model: its class, the options used, and the learned words
        (each file's sha256, so a changed file is not mixed into a resumed run)."""
        return {
            "class": type(self.pipe).__name__,
            "in_memory": self.given_pipe is not None,
            "generation": self.generation,
            "embeddings": [{"file": str(path), "sha256": sha256_of(path)} for path in self.probe.model["embeddings"]],
            "learned_tokens": sorted(self.pipe.tokenizer.get_added_vocab()),
            "regions": self._regions_label(),
        }

    def _regions_label(self) -> str | None:
        if isinstance(self.regions, UnsupervisedRegions):
            return type(self.regions).__name__
        if self.probe.inputs["masks"] is not None:
            return "mask folder " + self.probe.inputs["masks"]
        return f"{self.world.name} regions" if self.regions is not None else None


