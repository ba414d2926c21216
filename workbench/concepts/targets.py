"""Targets for TCAV on any diffusion pipeline, and their gradients at any layer.

A target is what a TCAV score explains. Two kinds:
- a callable on the model's one-step estimate of the clean image at a chosen timestep,
  x0_hat, decoded through the pipeline's VAE where it has one: images (n, 3, y, x) in about
  [-1, 1] -> (n,) scalars (a user's torch classifier's logit, an aesthetic score, ...);
- a `LayerReadout`: a linear readout of a module's pooled output (n, channels) @ weights,
  anywhere in the text encoder(s) or the denoiser.
Gradients of the target with respect to modules' outputs are taken for all inputs and all
modules in one forward and one backward pass, and pooled like the activations (summed over
positions, which is the derivative along a direction applied at every position). TargetModel
wraps the same function as an nn.Module for captum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch
from torch import nn

from ..capture.activations import module_tensor, pool_tensor, position_dims, resolve_module
from .pipeline_io import (
    Conditioning,
    clean_estimate,
    denoiser,
    denoiser_name,
    encode_prompts,
    from_latents,
    latent_shape,
    noise_to,
    predict,
    to_latents,
)

ImageTarget = Callable[[torch.Tensor], torch.Tensor]


def in_denoiser(pipe, module: str) -> bool:
    """Whether the module name ("unet.mid_block", "transformer.transformer_blocks.3") is inside the denoiser."""
    return module.split(".", 1)[0] == denoiser_name(pipe)


@dataclass(frozen=True)
class LayerReadout:
    """A target read off a module: its output mean-pooled over positions (n, channels) @ weights (channels,)."""

    module: str
    weights: torch.Tensor


Target = Union[ImageTarget, LayerReadout]


def classifier_logits(classifier, head: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """x0_hat (n, 3, y, x) in [-1, 1] -> (n, classes) logits of one head of a classifier with
    named heads (`classifier(images in [0, 1]).logits[head]`, classes in `classifier.heads`),
    such as the ShapesWorld classifier.

    Raises:
        ValueError: a head the classifier does not have (lists the ones it has).
    """
    if head not in classifier.heads:
        raise ValueError(f"the classifier has no head {head!r}; its heads are: {', '.join(classifier.heads)}")
    return lambda x0: classifier((x0 + 1) / 2).logits[head]


def classifier_logit(classifier, head: str, class_name: str) -> ImageTarget:
    """x0_hat (n, 3, y, x) in [-1, 1] -> (n,) logit of `class_name` in `head` ("color", "shape", ...).

    Raises:
        ValueError: a head or class the classifier does not have (lists the ones it has).
    """
    logits = classifier_logits(classifier, head)
    if class_name not in classifier.heads[head]:
        raise ValueError(f"the classifier's {head} head has no class {class_name!r}; its classes are: {', '.join(classifier.heads[head])}")
    index = classifier.heads[head].index(class_name)
    return lambda x0: logits(x0)[:, index]


def noised(scheduler, latents: torch.Tensor, timestep: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (n, c, y, x) noised to `timestep` (of 1000; a flow-matching model's noise share
    times 1000) with seeded noise: (noisy latents, timesteps (n,)).

    Concept activations and target gradients both read the model at this point.
    """
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(seed)).to(latents.device, latents.dtype)
    noisy, t = noise_to(scheduler, latents, noise, timestep)
    return noisy.to(latents.dtype), t


def model_inputs(pipe, images: torch.Tensor | None, n: int, timestep: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The denoiser's noisy input at `timestep` for n examples: their images (n, 3, y, x) in
    [-1, 1] through the VAE, each with its own seeded noise; or, for prompt-only examples
    (images None), one seeded noise draw on a blank latent shared by all, so that only their
    conditioning differs."""
    model = denoiser(pipe)
    if images is None:
        blank = torch.zeros(latent_shape(pipe, 1), device=model.device, dtype=model.dtype)
        noisy, t = noised(pipe.scheduler, blank, timestep, seed)
        return noisy.expand(n, *noisy.shape[1:]), t.expand(n)
    else:
        with torch.no_grad():
            latents = to_latents(pipe, images).to(model.device, model.dtype)
    return noised(pipe.scheduler, latents, timestep, seed)


def _replaced(output, old: torch.Tensor, new: torch.Tensor):
    """`output` with every occurrence of the tensor `old` replaced by `new`: a down block
    returns its output twice, as its result and as the last skip connection."""
    if output is old:
        return new
    if isinstance(output, tuple):
        return tuple(_replaced(item, old, new) for item in output)
    return output


def _evaluate(target: Target, x0_latents: torch.Tensor, pipe, kept: dict[str, torch.Tensor]) -> torch.Tensor:
    """The target's (n,) values; checks what a callable returned."""
    n = len(x0_latents)
    if isinstance(target, LayerReadout):
        pooled = pool_tensor(kept[target.module].float(), "mean")
        if pooled.shape[-1] != target.weights.shape[-1]:
            raise ValueError(f"the readout of {target.module!r} has {target.weights.shape[-1]} weights but the module has {pooled.shape[-1]} channels")
        return pooled @ target.weights.to(pooled)
    value = target(from_latents(pipe, x0_latents))
    if not isinstance(value, torch.Tensor) or value.shape != (n,):
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"the target returned {got}; expected one scalar per input, a tensor of shape ({n},)")
    return value


def gradients_at(
    pipe,
    modules: Sequence[str],
    images: torch.Tensor | None,
    prompts: Sequence[str],
    target: Target,
    timestep: int = 400,
    seed: int = 0,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Pooled activations and target gradients at several modules, in one pass.

    One forward of all inputs (text encoder(s), denoiser, and the VAE decoder for an image
    target), then one backward that stops at the earliest module asked for: only the
    gradients with respect to the modules' outputs are computed (no parameter gradients).

    Args:
        pipe: the pipeline (its own encode_prompt, denoiser, scheduler and VAE are used;
            weights stay frozen).
        modules: "component.path" names anywhere in the text encoder(s) and the denoiser
            (e.g. "unet.mid_block", "text_encoder.encoder.layers.1").
        images: the inputs' clean images (n, 3, y, x) in [-1, 1], noised to `timestep` with
            seeded noise in the denoiser's space; None for prompt-only inputs.
        prompts: n prompts for the conditioning ("" for unconditioned images).
        target: an image target (x0_hat -> (n,)) or a LayerReadout.

    Returns:
        module -> (activations, gradients), each (n, channels): mean- and sum-pooled over positions.

    Raises:
        ValueError: a module that does not exist (listing what does), images and prompts of
            different lengths, or a target that returns another shape than (n,).
    """
    modules = list(dict.fromkeys(modules))
    if not modules:
        raise ValueError("name at least one module, e.g. 'unet.mid_block' or 'text_encoder.encoder.layers.1'")
    prompts = list(prompts)
    if images is not None and len(images) != len(prompts):
        raise ValueError(f"got {len(images)} images but {len(prompts)} prompts")
    watched = modules + ([target.module] if isinstance(target, LayerReadout) and target.module not in modules else [])
    layers = {module: resolve_module(pipe, module) for module in watched}
    kept: dict[str, torch.Tensor] = {}

    def keeper(module: str):
        def keep(mod, inputs, output):
            tensor = module_tensor(mod, output)
            if not tensor.requires_grad:  # frozen weights upstream: differentiate from here
                fresh = tensor.detach().requires_grad_()
                output, tensor = _replaced(output, tensor, fresh), fresh
            kept[module] = tensor
            return output

        return keep

    noisy, t = model_inputs(pipe, images, len(prompts), timestep, seed)
    text_grads = any(not in_denoiser(pipe, m) for m in watched)
    handles = [layer.register_forward_hook(keeper(module)) for module, layer in layers.items()]
    try:
        with torch.enable_grad():
            with torch.set_grad_enabled(text_grads):
                conditioning = encode_prompts(pipe, prompts)
            prediction = predict(pipe, noisy, t, conditioning)
            value = _evaluate(target, clean_estimate(pipe.scheduler, noisy, prediction, t), pipe, kept)
            outputs = [kept[module] for module in modules]
            grads = torch.autograd.grad(value.sum(), outputs, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    found = {}
    for module, output, grad in zip(modules, outputs, grads):
        grad = torch.zeros_like(output) if grad is None else grad  # the target does not depend on it
        dims = position_dims(output)
        found[module] = (pool_tensor(output.detach().float(), "mean"), grad.float().sum(dim=dims) if dims else grad.float())
    return found


def layer_gradients(
    pipe,
    module: str,
    images: torch.Tensor | None,
    prompts: Sequence[str],
    target: Target,
    timestep: int = 400,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled activations of `module` and gradients of the target with respect to them.

    All inputs in one forward and one backward pass; see gradients_at for several modules at once.

    Returns:
        (activations, gradients), each (n, channels): mean- and sum-pooled over positions.
    """
    return gradients_at(pipe, [module], images, prompts, target, timestep, seed)[module]


class TargetModel(nn.Module):
    """The TCAV target as a torch model, for libraries that hook layers by name (captum).

    forward(noisy latents, timesteps, conditioning states, *added conditioning) -> `outputs`
    of the decoded x0_hat, (n, k): the same function as gradients_at's image target (pick one
    output with captum's `target=`). The denoiser is the submodule `unet` or `transformer`, as
    in the pipeline, so its layers keep the pipeline's names ("unet.mid_block",
    "transformer.transformer_blocks.3"). Prompts are encoded once, in `inputs`; `added` names
    the extra conditioning inputs that follow the states (SDXL: text_embeds, time_ids; SD3:
    pooled_projections; PixArt, Sana: encoder_attention_mask).

    Args:
        pipe: the pipeline.
        outputs: decoded x0_hat (n, 3, y, x) -> (n, k), e.g. classifier_logits(classifier, "color").
        pooled: denoiser modules to expose also as this package sees them, at "pooled.<module>"
            (e.g. "pooled.unet.mid_block"): an identity module whose output is the module's
            output averaged over positions (n, channels), and through which the forward pass
            continues unchanged; the gradient with respect to it is the position-summed
            gradient of gradients_at.

    Raises:
        ValueError: a pooled module that does not exist or is not in the denoiser.

    Example:
        >>> model = TargetModel(pipe, classifier_logits(classifier, "color"), pooled=["unet.mid_block"])
        >>> inputs = model.inputs(images, prompts, timestep=400)
        >>> model(*inputs)[:, classifier.heads["color"].index("red")]
    """

    def __init__(self, pipe, outputs: Callable[[torch.Tensor], torch.Tensor], pooled: Sequence[str] = ()):
        super().__init__()
        self.pipe, self.outputs = pipe, outputs
        name = denoiser_name(pipe)
        self.add_module(name, denoiser(pipe))
        with torch.no_grad():
            self.added = tuple(encode_prompts(pipe, [""]).added)
        self.pooled = nn.Module()
        self._taps: dict[str, tuple[nn.Module, nn.Module]] = {}
        for module in pooled:
            if not in_denoiser(pipe, module):
                raise ValueError(f"pooled module {module!r}: only denoiser modules ('{name}.<path>') can be pooled")
            block, parent = resolve_module(pipe, module), self.pooled
            for part in module.split("."):
                if not hasattr(parent, part):
                    parent.add_module(part, nn.Identity())
                parent = getattr(parent, part)
            self._taps[module] = (block, parent)

    def inputs(self, images: torch.Tensor | None, prompts: Sequence[str], timestep: int = 400, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """(noisy latents, timesteps (n,), states, *added conditioning), noised as gradients_at does."""
        noisy, t = model_inputs(self.pipe, images, len(prompts), timestep, seed)
        with torch.no_grad():
            conditioning = encode_prompts(self.pipe, list(prompts))
        return (noisy, t, conditioning.states, *(conditioning.added[k] for k in self.added))

    @staticmethod
    def _through(tap: nn.Module):
        def hook(module, inputs, output):
            tensor = module_tensor(module, output)
            dims = position_dims(tensor)
            if not dims:
                raise TypeError(f"a pooled module must return a (batch, channels, y, x) or (batch, tokens, features) tensor, got shape {tuple(tensor.shape)}")
            # the tap sees the pooled output cut from the graph, so that the pass upstream is
            # untouched; its output enters at every position with value 0 and gradient 1
            tapped = tap(tensor.detach().mean(dim=dims))
            delta = tapped - tapped.detach()  # (n, channels): 0, with gradient 1
            placed = delta.view(*delta.shape, 1, 1) if len(dims) == 2 else delta.unsqueeze(1)
            return _replaced(output, tensor, tensor + placed)

        return hook

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, states: torch.Tensor, *added: torch.Tensor) -> torch.Tensor:
        conditioning = Conditioning(states, dict(zip(self.added, added)))
        handles = [block.register_forward_hook(self._through(tap)) for block, tap in self._taps.values()]
        try:
            prediction = predict(self.pipe, noisy, timesteps, conditioning)
        finally:
            for handle in handles:
                handle.remove()
        return self.outputs(from_latents(self.pipe, clean_estimate(self.pipe.scheduler, noisy, prediction, timesteps)))
