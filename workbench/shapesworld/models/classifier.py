"""The ShapesWorld classifier: judges generated images and serves as TCAV's target model.

It reads an RGB image plus a mask channel that selects one object (all ones for the whole
image) and predicts that object's colour, shape and size, and the scene's background.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from ..vocabulary import FACTOR_VALUES
from .saved import load_saved

HEADS: dict[str, tuple[str, ...]] = {
    "color": FACTOR_VALUES["color"],
    "shape": FACTOR_VALUES["shape"],
    "size": FACTOR_VALUES["size"],
    "background": FACTOR_VALUES["background"],
}


@dataclass
class ClassifierOutput:
    """Logits per head, each (batch, n_classes); class names in `ShapesClassifier.heads`."""

    logits: dict[str, torch.Tensor]

    def predictions(self, heads: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
        return {name: [heads[name][i] for i in logit.argmax(1).tolist()] for name, logit in self.logits.items()}


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
        nn.MaxPool2d(2),
    )


class ShapesClassifier(nn.Module):
    """CNN over (image, mask) with one linear head per factor.

    Example:
        >>> clf = load_classifier()
        >>> out = clf(images)  # images (b, 3, 32, 32) in [0, 1]; mask defaults to all ones
        >>> out.logits["color"].shape
        torch.Size([b, 5])
    """

    def __init__(self, width: int = 16, image_size: int = 32, heads: dict[str, tuple[str, ...]] | None = None):
        super().__init__()
        self.width, self.image_size = width, image_size
        self.heads = dict(heads or HEADS)
        self.features = nn.Sequential(_block(4, width), _block(width, 2 * width), _block(2 * width, 4 * width))
        flat = 4 * width * (image_size // 8) ** 2
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(flat, 128), nn.SiLU())
        self.outputs = nn.ModuleDict({name: nn.Linear(128, len(classes)) for name, classes in self.heads.items()})

    def forward(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> ClassifierOutput:
        """Args: images (b, 3, y, x) in [0, 1]; masks (b, y, x), 1 on the object to judge."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[-1] != self.image_size:
            raise ValueError(
                f"images must be (batch, 3, {self.image_size}, {self.image_size}) in [0, 1], got {tuple(images.shape)}"
            )
        if masks is None:
            masks = torch.ones_like(images[:, 0])
        x = torch.cat([images * 2 - 1, masks[:, None].to(images.dtype)], dim=1)
        hidden = self.trunk(self.features(x))
        return ClassifierOutput({name: head(hidden) for name, head in self.outputs.items()})

    def save_pretrained(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, folder / "model.safetensors")
        config = {"width": self.width, "image_size": self.image_size, "heads": self.heads}
        (folder / "config.json").write_text(json.dumps(config, indent=1))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "ShapesClassifier":
        """Load from a folder with config.json and model.safetensors.

        Raises:
            FileNotFoundError: naming the missing file.
            ValueError: a damaged file or weights that do not fit (named).
        """
        return load_saved(folder, lambda config: cls(config["width"], config["image_size"], {k: tuple(v) for k, v in config["heads"].items()}),
                          "ShapesClassifier")


def load_classifier(name_or_path: str | Path = "shapes") -> ShapesClassifier:
    """The embedded classifier ("shapes": data/shapes-classifier) or a folder written by
    `ShapesClassifier.save_pretrained` (e.g. by `workbench world train-classifier`)."""
    from ..data import embedded_path

    return ShapesClassifier.from_pretrained(embedded_path("shapes-classifier") if str(name_or_path) == "shapes" else name_or_path)
