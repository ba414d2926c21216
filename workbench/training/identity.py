"""An identity loss for the word encoder: the frozen ShapesWorld classifier should read the
same factors from the model's predicted clean image as from the input image.

Encoder-based personalisation adds such a loss for what plain denoising under-weights (PhotoVerse,
Chen et al., 2023, compares face-recognition embeddings of the predicted clean image and the
input). Here denoising taught the encoder colour and background but left its redraws' shape at
chance, though the words could carry shape: a circle and a square differ in a few pixels at 32x32,
a small share of a noise-prediction error. The classifier reads the whole image (the all-ones mask
it was trained with for one-object scenes), so the loss does not depend on where the object is
redrawn, and its soft predictions on the input are the target, so no factor label is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..concepts.pipeline_io import clean_estimate
from ..models.classifier import ShapesClassifier


def identity_loss(
    classifier: ShapesClassifier, scheduler, targets: torch.Tensor, noisy: torch.Tensor,
    predicted_noise: torch.Tensor, timesteps: torch.Tensor, sample_weights: torch.Tensor,
) -> torch.Tensor:
    """KL from the classifier's predictions on the targets to those on the predicted clean images.

    Summed over the classifier's heads, weighted per sample by `sample_weights`, averaged over
    the batch. Every timestep counts alike: measured on the shipped model, the caption decides
    the predicted image's shape only from t ~ 550 of 1000 on (where alpha-bar < 0.4), and there
    the classifier still reads the predicted image (0.92 right at t = 800); at earlier steps the
    noisy image fixes the shape, so the words can change little and the loss weighs itself down.
    targets, noisy, predicted_noise: (batch, 3, y, x), images in [-1, 1]; sample_weights: (batch,).
    """
    with torch.no_grad():
        wanted = classifier((targets + 1) / 2).logits
    drawn = classifier((clean_estimate(scheduler, noisy, predicted_noise, timesteps).clamp(-1, 1) + 1) / 2).logits
    per_sample = sum(
        F.kl_div(F.log_softmax(drawn[head], dim=1), F.log_softmax(wanted[head], dim=1), log_target=True, reduction="none").sum(dim=1)
        for head in wanted
    )
    return (per_sample * sample_weights).mean()
