"""Embedded worlds: small models shipped with their ground truth, found as plugins.

The product knows no world by name. A world (ShapesWorld is the one this project ships)
registers an object with the attributes of `EmbeddedWorld` under the entry-point group
`workbench.worlds` in its package's metadata:

    [project.entry-points."workbench.worlds"]
    shapesworld = "workbench.shapesworld.embedded:WORLD"

`load_pipeline` finds the world's named models through it ("shapes"), and a probe run on the
world's own model takes its defaults from it: captions whose regions are known, concepts by
factor query, its classifier as the TCAV target, its word encoder and scenes for
[primary_auxiliary]. On any other model a probe names its own files instead.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from .analyses.regions import RegionSource
    from .concepts import ConceptSet

GROUP = "workbench.worlds"


class EmbeddedWorld(Protocol):
    """What a world offers the product; every method loads what it needs lazily."""

    name: str  # shown in messages, e.g. "ShapesWorld"
    pipelines: tuple[str, ...]  # the names of its models, for load_pipeline

    def pipeline_folder(self, name: str) -> Path:
        """The folder of the named model.

        Raises:
            PipelineLoadError: it is missing (names the folder and how to make it).
        """

    def pipeline_class(self, class_name: str) -> type | None:
        """The pipeline class for a model_index.json `_class_name`, if it is this world's."""

    def owns(self, pipe: Any) -> bool:
        """Whether `pipe` is this world's model (its defaults apply)."""

    def prompts(self, count: int, seed: int, split: str, objects: int) -> list[str]:
        """`count` captions of the world (its held-out `split`, `objects` per scene)."""

    def regions(self) -> "RegionSource":
        """The regions of a generated image, for leakage and localisation."""

    def concept(self, query: str, count: int, seed: int) -> "ConceptSet":
        """A concept of `count` examples matching a factor query such as "color=red"."""

    def random_sets(self, runs: int, count: int, seed: int) -> list["ConceptSet"]:
        """`runs` random concept sets of `count` examples."""

    def target(self, text: str) -> Callable:
        """The TCAV target a text names (e.g. a classifier class "color=red")."""

    def explained(self, target: str, count: int, seed: int) -> "ConceptSet":
        """The inputs whose predictions are explained for a target."""

    def word_encoder(self, name: str) -> Callable:
        """The word encoder a name gives (images -> (n, words, width))."""

    def comparison_inputs(self, count: int, seed: int) -> dict[str, Any]:
        """compare_words' images, labels and object masks for `count` examples."""

    def token_kind(self, token: str) -> str:
        """A label for a vocabulary token in projections ("color", "shape", "other", ...)."""


@cache
def embedded_worlds() -> tuple[EmbeddedWorld, ...]:
    """Every installed world, in name order (loaded once)."""
    return tuple(entry.load() for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name))


def world_of(pipe: Any) -> EmbeddedWorld | None:
    """The world whose model `pipe` is, or None for any other pipeline."""
    return next((world for world in embedded_worlds() if world.owns(pipe)), None)


def world_with_pipeline(name: str) -> EmbeddedWorld | None:
    """The world that ships a model called `name`, if any."""
    return next((world for world in embedded_worlds() if name in world.pipelines), None)


def pipeline_class(class_name: str) -> type | None:
    """A world's pipeline class for a model_index.json `_class_name`, if any world has it."""
    return next(filter(None, (world.pipeline_class(class_name) for world in embedded_worlds())), None)
