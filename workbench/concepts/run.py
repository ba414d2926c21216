"""TCAV on a diffusion model in one call: concept sets -> CAVs per layer -> tested scores.

The work is batched: the target's gradients at all layers come from one forward and one
backward pass over the inputs; the activations of all concept and random sets at all layers
from shared forward passes that stop after the last layer asked for (and from the cache when
one is given); and at each layer all CAVs are fitted together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from ..models.classifier import ShapesClassifier
from .cav import Method, Solver
from .concept_sets import ConceptSet, layer_activations
from .targets import classifier_logit, gradients_at
from .tcav import TCAVResult, results_frame, tcav_results


def run_tcav_results(
    pipe,
    classifier: ShapesClassifier,
    target: tuple[str, str],
    inputs: ConceptSet,
    concepts: Sequence[ConceptSet],
    random: Sequence[ConceptSet],
    layers: Sequence[str],
    timestep: int = 400,
    method: Method = "sgd",
    seed: int = 0,
    cache_dir: str | Path | None = None,
    solver: Solver = "batched",
) -> list[TCAVResult]:
    """run_tcav's results before the multiple-testing correction: one TCAVResult per
    (concept, layer), with the per-run scores and the CAVs themselves."""
    if not layers:
        raise ValueError("name at least one layer, e.g. 'unet.mid_block'")
    score = classifier_logit(classifier, *target)
    if inputs.images is None or not inputs.prompts:
        raise ValueError(f"the inputs {inputs.name!r} need images with prompts")
    gradients = {layer: g for layer, (_, g) in gradients_at(pipe, layers, inputs.images, inputs.prompts, score, timestep, seed).items()}
    activations = layer_activations(pipe, list(concepts) + list(random), layers, timestep, seed, cache_dir)
    return tcav_results(
        {c.name: activations[c.name] for c in concepts},
        {layer: [activations[r.name][layer] for r in random] for layer in layers},
        gradients,
        method=method,
        seed=seed,
        solver=solver,
    )


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
    solver: Solver = "batched",
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
        method: the CAV method (see CAV).
        alpha: family-wise significance level.
        cache_dir: where activations are cached between runs (None: no cache).
        solver: how CAVs are fitted: "batched" (together) or "sklearn" (per pair, as captum).

    Returns:
        The tidy TCAV frame (see concepts.tcav.tcav), Bonferroni over concepts x layers.

    Raises:
        ValueError: no layers, a target class the classifier lacks, inputs without images,
            an unknown layer (listing the valid ones), or repeated concept names.
    """
    return results_frame(
        run_tcav_results(pipe, classifier, target, inputs, concepts, random, layers, timestep, method, seed, cache_dir, solver),
        alpha,
    )
