"""TCAV on a diffusion model in one call: concept sets -> CAVs per layer -> tested scores."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from ..models.classifier import ShapesClassifier
from .cav import Method
from .concept_sets import ConceptSet, concept_activations
from .targets import classifier_logit, layer_gradients
from .tcav import tcav


def run_tcav(
    pipe,
    classifier: ShapesClassifier,
    target: tuple[str, str],
    inputs: ConceptSet,
    concepts: Sequence[ConceptSet],
    random: Sequence[ConceptSet],
    layers: Sequence[str],
    timestep: int = 400,
    method: Method = "sgd",
    alpha: float = 0.05,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Do the concepts drive the classifier's `target` class in what the model predicts?

    Args:
        pipe: the pipeline (UNet layers named "unet.<path>").
        classifier: judges the model's one-step clean-image estimate x0_hat.
        target: (head, class), e.g. ("color", "red") for "red object".
        inputs: the examples whose predictions are explained (images with prompts).
        concepts: concept sets (e.g. from_query("red", "color=red", 50)).
        random: R random sets (random_sets(R, 50)).
        layers: UNet modules, e.g. ["unet.mid_block", "unet.up_blocks.1"].
        timestep: the noise level at which x0_hat is read.

    Returns:
        The tidy TCAV frame (see concepts.tcav.tcav), Bonferroni over concepts x layers.
    """
    if not layers:
        raise ValueError("name at least one layer, e.g. 'unet.mid_block'")
    score = classifier_logit(classifier, *target)
    activations = {}
    for concept in list(concepts) + list(random):
        activations[concept.name] = {layer: concept_activations(pipe, concept, layer, timestep, seed, cache_dir) for layer in layers}
    gradients = {}
    for layer in layers:
        if inputs.images is None:
            raise ValueError(f"the inputs {inputs.name!r} need images with prompts")
        _, gradients[layer] = layer_gradients(pipe, layer, inputs.images, inputs.prompts, score, timestep, seed)
    return tcav(
        {c.name: activations[c.name] for c in concepts},
        {layer: [activations[r.name][layer] for r in random] for layer in layers},
        gradients,
        method=method,
        alpha=alpha,
        seed=seed,
    )
