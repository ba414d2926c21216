"""ShapesWorld as an embedded world of the workbench (registered in pyproject.toml under
`workbench.worlds`): its named models for `load_pipeline("shapes")`, and the defaults a probe
takes on its model (captions with known regions, factor-query concepts, the classifier as
target, the word encoder and its scenes). Imports are lazy: `load_pipeline` of a user's folder
asks every world for its names and should not pay for ShapesWorld's models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


class ShapesWorldPlugin:
    name = "ShapesWorld"
    pipelines = ("shapes", "shapes-transformer")
    classes = ("ShapesPipeline", "ShapesTransformerPipeline")

    def pipeline_folder(self, name: str) -> Path:
        from .data import embedded_path

        return embedded_path(name)

    def pipeline_class(self, class_name: str) -> type | None:
        if class_name not in self.classes:
            return None
        from .models import pipeline

        return getattr(pipeline, class_name)

    def owns(self, pipe: Any) -> bool:
        # by class name: a user's pipeline must not import ShapesWorld's models to be told apart
        return type(pipe).__name__ in self.classes

    def prompts(self, count: int, seed: int, split: str, objects: int) -> list[str]:
        from .scenes import sample_scenes

        return [scene.caption for scene in sample_scenes(count, seed=seed, split=split, n_objects=objects)]

    def regions(self):
        from .regions import caption_regions

        return caption_regions

    def concept(self, query: str, count: int, seed: int):
        from .concepts import from_query

        return from_query(query, query, count, seed=seed)

    def random_sets(self, runs: int, count: int, seed: int):
        from .concepts import random_sets

        return random_sets(runs, count, seed=seed)

    def target(self, text: str) -> Callable:
        from .concepts import classifier_target

        return classifier_target(text)

    def explained(self, target: str, count: int, seed: int):
        from .concepts import from_query

        return from_query(f"inputs ({target})", target, count, seed=seed)

    def word_encoder(self, name: str) -> Callable:
        from .models.word_encoder import load_word_encoder

        return load_word_encoder(name)

    def comparison_inputs(self, count: int, seed: int) -> dict[str, Any]:
        from .comparison import comparison_inputs
        from .scenes import sample_scenes

        return comparison_inputs(sample_scenes(count, seed=seed, split="test", n_objects=1))

    def token_kind(self, token: str) -> str:
        from .vocabulary import FACTOR_VALUES

        return next((factor for factor, values in FACTOR_VALUES.items() if token in values), "other")


WORLD = ShapesWorldPlugin()
