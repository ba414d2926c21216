"""The denoising objective shared by the diffusion and word-encoder trainers: epsilon
prediction at uniformly drawn timesteps with Min-SNR loss weighting (Hang et al., 2023)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def min_snr_weights(scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample loss weights min(SNR, gamma) / SNR for epsilon prediction."""
    alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
    snr = alphas / (1 - alphas)
    return torch.clamp(snr, max=gamma) / snr


def noised_batch(scheduler, images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noisy images, their noise, timesteps) at uniformly drawn timesteps (from `generator`)."""
    noise = torch.randn(images.shape, generator=generator)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(images),), generator=generator)
    return scheduler.add_noise(images, noise, timesteps), noise, timesteps


def weighted_error(
    predicted: torch.Tensor, target: torch.Tensor, scheduler, timesteps: torch.Tensor, gamma: float,
    pixel_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Min-SNR-weighted squared error between noise predictions, averaged over samples.

    pixel_weights: optional (batch, 1, y, x) weights; each sample's error is then averaged
    over its weighted pixels only (e.g. an object mask), not over the whole image; a sample
    with no weighted pixel adds nothing.
    """
    error = F.mse_loss(predicted, target, reduction="none").mean(dim=1, keepdim=True)
    if pixel_weights is None:
        per_sample = error.mean(dim=(1, 2, 3))
    else:
        per_sample = (error * pixel_weights).sum(dim=(1, 2, 3)) / pixel_weights.sum(dim=(1, 2, 3)).clamp_min(1e-8)
    return (per_sample * min_snr_weights(scheduler, timesteps, gamma)).mean()


def denoising_loss(
    unet, scheduler, images: torch.Tensor, context: torch.Tensor, generator: torch.Generator, gamma: float,
    pixel_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Min-SNR-weighted epsilon-prediction loss at random timesteps (noise from `generator`)."""
    noisy, noise, timesteps = noised_batch(scheduler, images, generator)
    predicted = unet(noisy, timesteps, encoder_hidden_states=context).sample
    return weighted_error(predicted, noise, scheduler, timesteps, gamma, pixel_weights)
