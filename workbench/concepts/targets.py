"""Target functions for TCAV on a diffusion model, and their gradients at a layer.

The default target reads the model's one-step estimate of the clean image,
x0_hat = (x_t - sqrt(1 - a_t) eps_hat) / sqrt(a_t), at a chosen timestep with the prompt's
conditioning, and returns the ShapesWorld classifier's logit for a class ("red object").
Gradients of the target with respect to a module's output are taken for all inputs in one
backward pass and pooled like the activations (summed over positions, which is the derivative
along a direction applied at every position).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..capture.activations import first_tensor, pool_tensor, resolve_module
from ..models.classifier import ShapesClassifier

Target = Callable[[torch.Tensor], torch.Tensor]


def classifier_logit(classifier: ShapesClassifier, head: str, class_name: str) -> Target:
    """x0_hat (n, 3, y, x) in [-1, 1] -> (n,) logit of `class_name` in `head` ("color", "shape", ...).

    Raises:
        ValueError: a head or class the classifier does not have (lists the ones it has).
    """
    if head not in classifier.heads:
        raise ValueError(f"the classifier has no head {head!r}; its heads are: {', '.join(classifier.heads)}")
    if class_name not in classifier.heads[head]:
        raise ValueError(f"the classifier's {head} head has no class {class_name!r}; its classes are: {', '.join(classifier.heads[head])}")
    index = classifier.heads[head].index(class_name)

    def target(x0: torch.Tensor) -> torch.Tensor:
        return classifier((x0 + 1) / 2).logits[head][:, index]

    return target


def noised(scheduler, images: torch.Tensor, timestep: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, 3, y, x) noised to `timestep` with seeded noise: (noisy images, timesteps (n,)).

    Concept activations and target gradients both read the model at this point.
    """
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)).to(images.device, images.dtype)
    t = torch.full((len(images),), timestep, dtype=torch.long, device=images.device)
    return scheduler.add_noise(images, noise, t), t


def layer_gradients(
    pipe,
    module: str,
    images: torch.Tensor,
    prompts: Sequence[str],
    target: Target,
    timestep: int = 400,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled activations of `module` and gradients of `target(x0_hat)` with respect to them.

    Args:
        pipe: the pipeline (its unet, text encoder and scheduler are used; weights stay frozen).
        module: "unet.<path>" (e.g. "unet.mid_block"), see capture.activations.resolve_module.
        images: clean images (n, 3, y, x) in [-1, 1], noised to `timestep` with seeded noise.
        prompts: n prompts for the conditioning.
        target: x0_hat -> (n,) scalars, e.g. classifier_logit(...).

    Returns:
        (activations, gradients), each (n, channels): mean- and sum-pooled over positions.
    """
    if not module.startswith("unet."):
        raise ValueError(f"module {module!r}: gradients through x0_hat need a UNet module ('unet.<path>')")
    if len(images) != len(prompts):
        raise ValueError(f"got {len(images)} images but {len(prompts)} prompts")
    layer = resolve_module(pipe, module)
    kept: dict[str, torch.Tensor] = {}

    def keep(mod, inputs, output):
        tensor = first_tensor(output)
        tensor.retain_grad()
        kept["output"] = tensor

    scheduler, unet = pipe.scheduler, pipe.unet
    alpha = scheduler.alphas_cumprod.to(images.device)[timestep]
    noisy, t = noised(scheduler, images, timestep, seed)
    handle = layer.register_forward_hook(keep)
    try:
        with torch.no_grad():
            context = pipe.text_encoder(pipe.tokenize(list(prompts)).to(images.device))[0]
        with torch.enable_grad():
            eps = unet(noisy, t, encoder_hidden_states=context).sample
            x0 = (noisy - (1 - alpha).sqrt() * eps) / alpha.sqrt()
            target(x0).sum().backward()
    finally:
        handle.remove()
        unet.zero_grad(set_to_none=True)
    output = kept["output"]
    dims = tuple(range(2, output.ndim))
    return pool_tensor(output.detach().float(), "mean"), output.grad.float().sum(dim=dims) if dims else output.grad.float()
