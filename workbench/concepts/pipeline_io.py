"""What concept analyses read from any text-to-image pipeline, the way it reads them itself.

- `encode_prompts`: the pipeline's own `encode_prompt` (its tokenizer(s), text encoder(s),
  learned words; SDXL's two encoders, its pooled embedding and size conditioning);
- `to_latents` / `from_latents`: images to the denoiser's space through the pipeline's VAE
  (its mean, times the scaling factor), and back; the identity for pixel-space models;
- `predict`: one denoiser call; `clean_estimate`: the one-step clean estimate x0_hat for the
  scheduler's prediction type (epsilon, v or sample).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Sequence

import torch


@dataclass
class Conditioning:
    """Prompt conditioning for the denoiser: states (n, tokens, width) and the extra inputs
    some denoisers take (SDXL: text_embeds (n, width_2), time_ids (n, 6))."""

    states: torch.Tensor
    added: dict[str, torch.Tensor] = field(default_factory=dict)

    def rows(self, index: torch.Tensor | slice) -> "Conditioning":
        return Conditioning(self.states[index], {k: v[index] for k, v in self.added.items()})


def _device(pipe) -> torch.device:
    return getattr(pipe, "device", torch.device("cpu"))


def encode_prompts(pipe, prompts: Sequence[str], image_size: tuple[int, int] | None = None) -> Conditioning:
    """The pipeline's conditioning for `prompts`, without classifier-free guidance.

    Args:
        image_size: (height, width) in pixels, for SDXL's size conditioning (default: the
            pipeline's default resolution).

    Raises:
        ValueError: a pipeline without `encode_prompt`, or no prompts.
    """
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts to encode")
    encode = getattr(pipe, "encode_prompt", None)
    if encode is None:
        raise ValueError(f"{type(pipe).__name__} has no encode_prompt; concept analyses need a pipeline that encodes prompts")
    wanted = {"device": _device(pipe), "num_images_per_prompt": 1, "do_classifier_free_guidance": False}
    parameters = inspect.signature(encode).parameters
    out = encode(prompts, **{k: v for k, v in wanted.items() if k in parameters})
    if isinstance(out, torch.Tensor):
        return Conditioning(out)
    states, pooled = out[0], (out[2] if len(out) >= 4 else None)
    added = {}
    if getattr(getattr(pipe, "unet", None), "config", None) is not None and pipe.unet.config.get("addition_embed_type") == "text_time":
        height, width = image_size or default_image_size(pipe)
        # SDXL's micro-conditioning: original size, crop top-left, target size
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=states.dtype, device=states.device)
        added = {"text_embeds": pooled, "time_ids": time_ids.repeat(len(prompts), 1)}
    return Conditioning(states, added)


def default_image_size(pipe) -> tuple[int, int]:
    """The pipeline's default (height, width) in pixels."""
    side = pipe.unet.config.sample_size * getattr(pipe, "vae_scale_factor", 1)
    return (side, side) if isinstance(side, int) else tuple(side)


def _vae(pipe):
    return getattr(pipe, "vae", None)


def _scaling(vae) -> tuple[float, float]:
    return vae.config.scaling_factor, vae.config.get("shift_factor") or 0.0


def to_latents(pipe, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Images (n, 3, y, x) in [-1, 1] -> what the denoiser denoises: the VAE's latent mean,
    scaled as the pipeline scales it, (n, c, y / f, x / f); pixel-space models: the images."""
    vae = _vae(pipe)
    if vae is None:
        return images.to(_device(pipe))
    scale, shift = _scaling(vae)
    pieces = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(_device(pipe), vae.dtype)
        pieces.append((vae.encode(batch).latent_dist.mean - shift) * scale)
    return torch.cat(pieces)


def from_latents(pipe, latents: torch.Tensor) -> torch.Tensor:
    """The inverse of `to_latents`: (n, 3, y, x) in about [-1, 1], differentiable."""
    vae = _vae(pipe)
    if vae is None:
        return latents
    scale, shift = _scaling(vae)
    return vae.decode(latents / scale + shift).sample


def latent_shape(pipe, n: int, image_size: tuple[int, int] | None = None) -> tuple[int, ...]:
    """(n, channels, y, x) of the denoiser's input for images of `image_size` pixels."""
    height, width = image_size or default_image_size(pipe)
    factor = getattr(pipe, "vae_scale_factor", 1) if _vae(pipe) is not None else 1
    return (n, pipe.unet.config.in_channels, height // factor, width // factor)


def predict(pipe, noisy: torch.Tensor, timesteps: torch.Tensor, conditioning: Conditioning) -> torch.Tensor:
    """The denoiser's prediction (epsilon, v or sample, as the scheduler expects)."""
    added = conditioning.added or None
    return pipe.unet(noisy, timesteps, encoder_hidden_states=conditioning.states, added_cond_kwargs=added).sample


def clean_estimate(scheduler, noisy: torch.Tensor, prediction: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The one-step clean estimate x0_hat, for the scheduler's prediction type:
    epsilon: (x_t - sqrt(1 - a_t) eps) / sqrt(a_t); v: sqrt(a_t) x_t - sqrt(1 - a_t) v; sample: itself.

    Raises:
        ValueError: another prediction type.
    """
    kind = scheduler.config.get("prediction_type", "epsilon")
    alpha = scheduler.alphas_cumprod.to(noisy.device, noisy.dtype)[timesteps].view(-1, *([1] * (noisy.ndim - 1)))
    if kind == "epsilon":
        return (noisy - (1 - alpha).sqrt() * prediction) / alpha.sqrt()
    if kind == "v_prediction":
        return alpha.sqrt() * noisy - (1 - alpha).sqrt() * prediction
    if kind == "sample":
        return prediction
    raise ValueError(f"the scheduler's prediction_type {kind!r} is not one of epsilon, v_prediction, sample")
