"""TCAV on a diffusion model in one call: concept sets -> CAVs per layer -> tested scores.

The work is batched: the target's gradients at all layers come from one forward and one
backward pass over the inputs; the activations of all concept and random sets at all layers
from shared forward passes that stop after the last layer asked for (and from the cache when
one is given); and at each layer all CAVs are fitted together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .cav import Method, Solver
from .concept_sets import ConceptSet, layer_activations
from .targets import Target, gradients_at
from .tcav import TCAVReport, _results


def run_tcav(
    pipe,
    target: Target,
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
) -> TCAVReport:
    """Do the concepts drive the target in what the model predicts?

    Args:
        pipe: any pipeline with a denoiser (SD 1.x/2.x/SDXL, SD3, Flux, PixArt, Sana, the
            ShapesWorld models); layers named "component.path" in its text encoder(s) or
            denoiser (a joint-attention block is read on its image tokens).
        target: a callable on the decoded one-step clean estimate x0_hat ((n, 3, y, x) ->
            (n,), e.g. your classifier's logit, or ShapesWorld's classifier_logit(classifier,
            "color", "red")), or a LayerReadout of a module.
        inputs: the examples whose predictions are explained (images and/or prompts).
        concepts: concept sets (ConceptSet.from_folder, prompts, embeddings; ShapesWorld's
            shapesworld.concepts.from_query("red", "color=red", 50)).
        random: R random sets (sets_from_pool(pool, R, n), or shapesworld.concepts.random_sets(R, n)).
        layers: modules, e.g. ["unet.mid_block", "text_encoder.encoder.layers.1"].
        timestep: the noise level at which the model is read, of 1000 (flow-matching models:
            the noise share times 1000).
        method: the CAV method (see CAV).
        alpha: family-wise significance level.
        cache_dir: where activations are cached between runs (None: no cache).
        solver: how CAVs are fitted: "batched" (together) or "sklearn" (per pair, as captum).

    Returns:
        A TCAVReport: `.results` (one per concept and layer: scores per random set, CAVs,
        p-values) and `.to_frame()` (the tidy table, significance Bonferroni-corrected over
        concepts x layers at `alpha`).

    Raises:
        ValueError: no layers, inputs given as embeddings, an unknown layer (listing the valid
            ones), repeated concept names, or a target that returns another shape than (n,).
    """
    if not layers:
        raise ValueError("name at least one layer, e.g. 'unet.mid_block'")
    if not concepts:
        raise ValueError("name at least one concept set to test (a ConceptSet of images, prompts or embeddings)")
    if inputs.embeddings is not None:
        raise ValueError(f"the inputs {inputs.name!r} are embeddings; the explained inputs need images and/or prompts to run the model on")
    prompts = inputs.prompts or ("",) * len(inputs)
    gradients = {layer: g for layer, (_, g) in gradients_at(pipe, layers, inputs.images, prompts, target, timestep, seed).items()}
    activations = layer_activations(pipe, list(concepts) + list(random), layers, timestep, seed, cache_dir)
    return TCAVReport(tuple(_results(
        {c.name: activations[c.name] for c in concepts},
        {layer: [activations[r.name][layer] for r in random] for layer in layers},
        gradients,
        method=method,
        seed=seed,
        solver=solver,
    )), alpha)
