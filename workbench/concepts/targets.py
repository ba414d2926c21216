"""Target functions for TCAV on a diffusion model, and their gradients at a layer.

The default target reads the model's one-step estimate of the clean image,
x0_hat = (x_t - sqrt(1 - a_t) eps_hat) / sqrt(a_t), at a chosen timestep with the prompt's
conditioning, and returns the ShapesWorld classifier's logit for a class ("red object").
Gradients of the target with respect to modules' outputs are taken for all inputs and all
modules in one forward and one backward pass, and pooled like the activations (summed over
positions, which is the derivative along a direction applied at every position). TargetModel
wraps the same function as an nn.Module for captum.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

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


def x0_hat(scheduler, noisy: torch.Tensor, eps: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The one-step clean-image estimate (x_t - sqrt(1 - a_t) eps_hat) / sqrt(a_t), (n, 3, y, x)."""
    alpha = scheduler.alphas_cumprod.to(noisy.device, noisy.dtype)[timesteps].view(-1, *([1] * (noisy.ndim - 1)))
    return (noisy - (1 - alpha).sqrt() * eps) / alpha.sqrt()


def gradients_at(
    pipe,
    modules: Sequence[str],
    images: torch.Tensor,
    prompts: Sequence[str],
    target: Target,
    timestep: int = 400,
    seed: int = 0,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Pooled activations and target gradients at several UNet modules, in one pass.

    One forward of all inputs, then one backward that stops at the earliest module asked for:
    only the gradients with respect to the modules' outputs are computed (no parameter
    gradients, nothing upstream of the earliest module).

    Args:
        pipe: the pipeline (its unet, text encoder and scheduler are used; weights stay frozen).
        modules: "unet.<path>" names (e.g. "unet.mid_block"), see capture.activations.resolve_module.
        images: clean images (n, 3, y, x) in [-1, 1], noised to `timestep` with seeded noise.
        prompts: n prompts for the conditioning.
        target: x0_hat -> (n,) scalars, e.g. classifier_logit(...).

    Returns:
        module -> (activations, gradients), each (n, channels): mean- and sum-pooled over positions.

    Raises:
        ValueError: a module outside the UNet or that does not exist (listing what does), or
            images and prompts of different lengths.
    """
    modules = list(dict.fromkeys(modules))
    if not modules:
        raise ValueError("name at least one module, e.g. 'unet.mid_block'")
    for module in modules:
        if not module.startswith("unet."):
            raise ValueError(f"module {module!r}: gradients through x0_hat need a UNet module ('unet.<path>')")
    if len(images) != len(prompts):
        raise ValueError(f"got {len(images)} images but {len(prompts)} prompts")
    layers = {module: resolve_module(pipe, module) for module in modules}
    kept: dict[str, torch.Tensor] = {}

    def keeper(module: str):
        def keep(mod, inputs, output):
            tensor = first_tensor(output)
            if isinstance(output, torch.Tensor) and not tensor.requires_grad:  # frozen weights upstream
                output = tensor = tensor.detach().requires_grad_()
            kept[module] = tensor
            return output

        return keep

    noisy, t = noised(pipe.scheduler, images, timestep, seed)
    handles = [layer.register_forward_hook(keeper(module)) for module, layer in layers.items()]
    try:
        with torch.no_grad():
            context = pipe.text_encoder(pipe.tokenize(list(prompts)).to(images.device))[0]
        with torch.enable_grad():
            eps = pipe.unet(noisy, t, encoder_hidden_states=context).sample
            outputs = [kept[module] for module in modules]
            grads = torch.autograd.grad(target(x0_hat(pipe.scheduler, noisy, eps, t)).sum(), outputs)
    finally:
        for handle in handles:
            handle.remove()
    found = {}
    for module, output, grad in zip(modules, outputs, grads):
        dims = tuple(range(2, output.ndim))
        found[module] = (pool_tensor(output.detach().float(), "mean"), grad.float().sum(dim=dims) if dims else grad.float())
    return found


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

    All inputs in one forward and one backward pass; see gradients_at for several modules at once.

    Returns:
        (activations, gradients), each (n, channels): mean- and sum-pooled over positions.
    """
    return gradients_at(pipe, [module], images, prompts, target, timestep, seed)[module]


class TargetModel(nn.Module):
    """The TCAV target as a torch model, for libraries that hook layers by name (captum).

    forward(noisy images, timesteps, token ids) -> the classifier's logits for one head (n, classes)
    on x0_hat: the same function as classifier_logit on layer_gradients' x0_hat, with all classes
    (pick one with captum's `target=`). The UNet is the submodule `unet`, so its layers keep the
    pipeline's names ("unet.mid_block"). The text encoder runs without gradients.

    Args:
        pipe, classifier, head: the pipeline, the classifier and the head whose logits are returned.
        pooled: UNet modules to expose also as this package sees them, at "pooled.<module>"
            (e.g. "pooled.unet.mid_block"): an identity module whose output is the module's
            output averaged over positions (n, channels), and through which the forward pass
            continues unchanged; the gradient with respect to it is the position-summed
            gradient of gradients_at.

    Raises:
        ValueError: a head the classifier lacks, or a pooled module that does not exist.

    Example:
        >>> model = TargetModel(pipe, classifier, "color", pooled=["unet.mid_block"])
        >>> noisy, t, ids = model.inputs(images, prompts, timestep=400)
        >>> model(noisy, t, ids)[:, classifier.heads["color"].index("red")]
    """

    def __init__(self, pipe, classifier: ShapesClassifier, head: str, pooled: Sequence[str] = ()):
        super().__init__()
        if head not in classifier.heads:
            raise ValueError(f"the classifier has no head {head!r}; its heads are: {', '.join(classifier.heads)}")
        self.unet, self.text_encoder, self.classifier = pipe.unet, pipe.text_encoder, classifier
        self.head, self.scheduler, self.tokenize = head, pipe.scheduler, pipe.tokenize
        self.pooled = nn.Module()
        self._taps: dict[str, tuple[nn.Module, nn.Module]] = {}
        for module in pooled:
            if not module.startswith("unet."):
                raise ValueError(f"pooled module {module!r}: only UNet modules ('unet.<path>') can be pooled")
            block, parent = resolve_module(pipe, module), self.pooled
            for part in module.split("."):
                if not hasattr(parent, part):
                    parent.add_module(part, nn.Identity())
                parent = getattr(parent, part)
            self._taps[module] = (block, parent)

    def inputs(self, images: torch.Tensor, prompts: Sequence[str], timestep: int = 400, seed: int = 0):
        """(noisy images (n, 3, y, x), timesteps (n,), token ids (n, tokens)), noised as layer_gradients does."""
        noisy, t = noised(self.scheduler, images, timestep, seed)
        return noisy, t, self.tokenize(list(prompts)).to(images.device)

    @staticmethod
    def _through(tap: nn.Module):
        def hook(module, inputs, output):
            tensor = first_tensor(output)
            if not isinstance(output, torch.Tensor) or tensor.ndim < 3:
                raise TypeError(f"a pooled module must return a (batch, channels, ...) tensor, got {type(output).__name__}")
            dims = tuple(range(2, tensor.ndim))
            # the tap sees the pooled output cut from the graph, so that the pass upstream is
            # untouched; its output enters at every position with value 0 and gradient 1
            tapped = tap(tensor.detach().mean(dim=dims))
            return tensor + (tapped - tapped.detach()).view(*tapped.shape, *([1] * len(dims)))

        return hook

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            context = self.text_encoder(input_ids)[0]
        handles = [block.register_forward_hook(self._through(tap)) for block, tap in self._taps.values()]
        try:
            eps = self.unet(noisy, timesteps, encoder_hidden_states=context).sample
        finally:
            for handle in handles:
                handle.remove()
        x0 = x0_hat(self.scheduler, noisy, eps, timesteps)
        return self.classifier((x0 + 1) / 2).logits[self.head]
