"""Train the ShapesWorld classifier on rendered scenes (`workbench world train-classifier`).

Generated images are never exactly the palette and their masks come from colour segmentation,
so training adds noise, colour jitter, blur and one-pixel mask erosion/dilation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from workbench.files import atomic_path

from ..models.classifier import HEADS, ShapesClassifier
from ..scenes import sample_scene


@dataclass(frozen=True)
class ClassifierTrainingConfig:
    steps: int = 1200
    batch_size: int = 64
    learning_rate: float = 2e-3
    whole_image_fraction: float = 0.5  # of one-object samples, judged with an all-ones mask
    seed: int = 0


def draw_examples(rng: np.random.Generator, n: int, image_size: int = 32, whole_image_fraction: float = 0.5):
    """`n` (image, mask, labels) examples: images (n, 3, y, x) in [0, 1], masks (n, y, x)."""
    images, masks = [], []
    labels = {name: [] for name in HEADS}
    for _ in range(n):
        scene = sample_scene(rng, int(rng.integers(1, 3)), image_size)
        index = int(rng.integers(len(scene.objects)))
        whole = len(scene.objects) == 1 and rng.random() < whole_image_fraction
        mask = np.ones((image_size, image_size), bool) if whole else scene.object_masks[index]
        obj = scene.objects[index]
        images.append(scene.image)
        masks.append(mask)
        for name, value in (("color", obj.color), ("shape", obj.shape), ("size", obj.size), ("background", scene.background)):
            labels[name].append(HEADS[name].index(value))
    image_tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    mask_tensor = torch.from_numpy(np.stack(masks)).float()
    return image_tensor, mask_tensor, {k: torch.tensor(v) for k, v in labels.items()}


def augment(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator):
    """Noise, per-image colour jitter, random blur, and one-pixel mask dilation or erosion."""
    n = len(images)
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    blurred = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    blend = (rand(n, 1, 1, 1) < 0.3).float() * rand(n, 1, 1, 1)
    images = images * (1 - blend) + blurred * blend
    images = images + (rand(n, 3, 1, 1) - 0.5) * 0.15
    images = images + torch.randn(images.shape, generator=generator) * rand(n, 1, 1, 1) * 0.08
    grown = F.max_pool2d(masks[:, None], 3, stride=1, padding=1)[:, 0]
    shrunk = -F.max_pool2d(-masks[:, None], 3, stride=1, padding=1)[:, 0]
    choice = rand(n, 1, 1)
    masks = torch.where(choice < 0.2, grown, torch.where(choice < 0.4, shrunk, masks))
    return images.clamp(0, 1), masks


def train_classifier(out: str | Path, cfg: ClassifierTrainingConfig = ClassifierTrainingConfig()) -> ShapesClassifier:
    """Train a classifier and save it atomically to `out` (config.json + model.safetensors)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = ShapesClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.learning_rate, total_steps=cfg.steps)
    model.train()
    bar = tqdm(range(cfg.steps), desc="train classifier")
    for _ in bar:
        images, masks, labels = draw_examples(rng, cfg.batch_size, model.image_size, cfg.whole_image_fraction)
        images, masks = augment(images, masks, generator)
        logits = model(images, masks).logits
        loss = sum(F.cross_entropy(logits[name], labels[name]) for name in HEADS)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp)
    return model
