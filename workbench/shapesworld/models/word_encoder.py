"""The ShapesWorld word encoder: an image -> one primary word and auxiliary words (ELITE-style).

A small `CLIPVisionModel` gives hierarchical features (CLS + patch tokens of several layers);
the global mapping turns the deepest layer into the primary word w0 and shallower layers into
the auxiliary words w1..wk, in the text encoder's embedding space.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from workbench.files import atomic_path
from workbench.pipelines.elite import GlobalMapping
from workbench.pipelines.image_input import ImageLike, encoder_pixels

from ..data import embedded_path
from .saved import load_saved


@dataclass(frozen=True)
class WordEncoderConfig:
    image_size: int = 32
    patch_size: int = 4
    width: int = 64
    layers: int = 4
    heads: int = 4
    text_width: int = 64
    mapping_hidden: int = 128
    # Encoder layers feeding w0, w1, ...: the deepest first, as ELITE does.
    feature_layers: tuple[int, ...] = (4, 1, 2)

    @property
    def n_words(self) -> int:
        return len(self.feature_layers)


class WordEncoder(nn.Module):
    """images (batch, 3, y, x) in [0, 1] -> words (batch, n_words, text_width); w0 is primary."""

    def __init__(self, config: WordEncoderConfig = WordEncoderConfig()):
        super().__init__()
        if any(not 1 <= layer <= config.layers for layer in config.feature_layers):
            raise ValueError(f"feature_layers {config.feature_layers} must lie in 1..{config.layers}")
        self.config = config
        self.vision = CLIPVisionModel(
            CLIPVisionConfig(
                image_size=config.image_size,
                patch_size=config.patch_size,
                hidden_size=config.width,
                intermediate_size=2 * config.width,
                num_hidden_layers=config.layers,
                num_attention_heads=config.heads,
            )
        )
        self.mapping = GlobalMapping(config.width, config.text_width, config.n_words, config.mapping_hidden)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Hidden states (batch, 1 + patches, width) of the feature layers, deepest first."""
        expected = (3, self.config.image_size, self.config.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"images must be (batch, {', '.join(map(str, expected))}) in [0, 1], got {tuple(images.shape)}")
        states = self.vision(pixel_values=images * 2 - 1, output_hidden_states=True).hidden_states
        return [states[layer] for layer in self.config.feature_layers]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.mapping(self.features(images))

    @torch.no_grad()
    def encode(self, images: Sequence[ImageLike] | ImageLike | torch.Tensor) -> torch.Tensor:
        """Words (batch, n_words, text_width) for a user's images: PIL images or files of any
        mode and size, arrays or tensors, converted as `image_input.encoder_pixels` says."""
        return self(encoder_pixels(images, self.config.image_size))

    def save_pretrained(self, folder: str | Path) -> None:
        """config.json + model.safetensors, written atomically."""
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            (tmp / "config.json").write_text(json.dumps(asdict(self.config), indent=1))
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, tmp / "model.safetensors")

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "WordEncoder":
        return load_saved(folder, lambda raw: cls(WordEncoderConfig(**{**raw, "feature_layers": tuple(raw["feature_layers"])})), "WordEncoder")


def load_word_encoder(name_or_path: str | Path = "shapes") -> WordEncoder:
    """The embedded ShapesWorld encoder ("shapes": data/shapes-encoder) or a folder written by
    `WordEncoder.save_pretrained` (e.g. by `workbench world train-encoder`)."""
    folder = embedded_path("shapes-encoder") if str(name_or_path) == "shapes" else Path(name_or_path)
    return WordEncoder.from_pretrained(folder)
