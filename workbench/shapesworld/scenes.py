"""Scenes of ShapesWorld: seeded sampling, rendering with exact masks, and the held-out split."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Sequence

import numpy as np
import pandas as pd
import torch

from .captions import CaptionFactors, ObjectWords, make_caption
from .render import background_image, paint, shape_mask
from .vocabulary import BACKGROUNDS, COLORS, SHAPES, SIZES

Split = Literal["train", "test", "all"]

# One combination in HOLDOUT_MODULUS is held out of training for evaluation.
HOLDOUT_MODULUS = 10
# Shapes stay inside their bounding circle, so centres this far beyond the summed radii never touch.
GAP = 1.0


@dataclass(frozen=True)
class SceneObject:
    """One object: its factors and its centre in pixel coordinates (x right, y down)."""

    shape: str
    color: str
    size: str
    x: float
    y: float

    @property
    def radius(self) -> float:
        return SIZES[self.size]


@dataclass(frozen=True)
class Scene:
    """One ShapesWorld scene. Objects are listed in the order the caption mentions them."""

    objects: tuple[SceneObject, ...]
    background: str
    image_size: int = 32

    @property
    def factors(self) -> CaptionFactors:
        return CaptionFactors(
            tuple(ObjectWords(o.size, o.color, o.shape) for o in self.objects), self.background
        )

    @property
    def caption(self) -> str:
        return make_caption(self.factors)

    @cached_property
    def object_masks(self) -> np.ndarray:
        """Boolean (n_objects, y, x): the pixels each object covers (disjoint)."""
        return np.stack(
            [shape_mask(o.shape, o.x, o.y, o.radius, self.image_size) for o in self.objects]
        )

    @property
    def background_mask(self) -> np.ndarray:
        """Boolean (y, x): the pixels no object covers."""
        return ~self.object_masks.any(axis=0)

    @cached_property
    def image(self) -> np.ndarray:
        """The RGB image, uint8 (y, x, 3)."""
        image = background_image(self.background, self.image_size)
        for obj, mask in zip(self.objects, self.object_masks):
            paint(image, mask, obj.color)
        return image

    @property
    def held_out(self) -> bool:
        return is_held_out(self.factors)

    def to_frame(self) -> pd.DataFrame:
        """One row per object: its index, factors, centre and the scene's background."""
        return pd.DataFrame(
            [
                {
                    "object": i,
                    "shape": o.shape,
                    "color": o.color,
                    "size": o.size,
                    "x": o.x,
                    "y": o.y,
                    "background": self.background,
                    "caption": self.caption,
                }
                for i, o in enumerate(self.objects)
            ]
        )


def is_held_out(factors: CaptionFactors) -> bool:
    """Whether this combination of factors belongs to the evaluation split.

    Decided by a stable hash of the objects (order-free) and background, so the split is the
    same on every machine and every run; every colour-shape pair still occurs in training.
    """
    objects = sorted(f"{o.size} {o.color} {o.shape}" for o in factors.objects)
    key = " + ".join(objects) + " | " + factors.background
    return zlib.crc32(key.encode()) % HOLDOUT_MODULUS == 0


def _place(rng: np.random.Generator, radii: Sequence[float], image_size: int) -> list[tuple[float, float]]:
    """Centres for objects of these radii inside the image, at least GAP pixels apart.

    Each centre is drawn uniformly from the positions still free (on a quarter-pixel grid),
    so two large objects always fit without rejection loops.
    """
    for _ in range(100):
        centres: list[tuple[float, float]] = []
        for r in radii:
            axis = np.arange(r, image_size - r + 1e-9, 0.25)
            xs, ys = np.meshgrid(axis, axis)
            free = np.ones(xs.shape, bool)
            for (cx, cy), rc in zip(centres, radii):
                free &= np.hypot(xs - cx, ys - cy) >= r + rc + GAP
            if not free.any():
                break
            pick = rng.integers(free.sum())
            centres.append((float(xs[free][pick]), float(ys[free][pick])))
        else:
            return centres
    raise RuntimeError(f"could not place objects of radii {list(radii)} in a {image_size}px image")


def sample_scene(
    rng: np.random.Generator, n_objects: int, image_size: int = 32, split: Split = "all"
) -> Scene:
    """Draw one scene uniformly over factors, within the requested split."""
    while True:
        shapes = rng.choice(SHAPES, size=n_objects)
        colors = rng.choice(list(COLORS), size=n_objects)
        sizes = rng.choice(list(SIZES), size=n_objects)
        background = str(rng.choice(list(BACKGROUNDS)))
        centres = _place(rng, [SIZES[s] for s in sizes], image_size)
        objects = tuple(
            SceneObject(str(sh), str(c), str(sz), round(float(x), 2), round(float(y), 2))
            for sh, c, sz, (x, y) in zip(shapes, colors, sizes, centres)
        )
        scene = Scene(objects, background, image_size)
        if split == "all" or scene.held_out == (split == "test"):
            return scene


def sample_scenes(
    n: int,
    *,
    seed: int = 0,
    split: Split = "all",
    n_objects: int | Sequence[int] = (1, 2),
    image_size: int = 32,
) -> list[Scene]:
    """`n` reproducible scenes: the same seed gives the same scenes.

    Args:
        n: number of scenes.
        seed: seed of the random generator.
        split: "train" (combinations seen in training), "test" (held-out combinations) or "all".
        n_objects: objects per scene, or the choices drawn from uniformly.
        image_size: side of the square image in pixels (>= 24).

    Raises:
        ValueError: on a bad split, object count or image size.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    counts = [n_objects] if isinstance(n_objects, int) else list(n_objects)
    if not counts or any(c not in (1, 2) for c in counts):
        raise ValueError(f"n_objects must be 1, 2 or a choice of them, got {n_objects!r}")
    if image_size < 24:
        raise ValueError(f"image_size must be at least 24 pixels, got {image_size}")
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, int(rng.choice(counts)), image_size, split) for _ in range(n)]


def scenes_frame(scenes: Sequence[Scene]) -> pd.DataFrame:
    """Tidy factor table: one row per object of each scene, with a `scene` index column."""
    frames = [s.to_frame().assign(scene=i) for i, s in enumerate(scenes)]
    frame = pd.concat(frames, ignore_index=True)
    return frame[["scene"] + [c for c in frame.columns if c != "scene"]]


def images_to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 RGB images (y, x, 3) as float (batch, 3, y, x) in [-1, 1], the models' pixel range."""
    array = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def scenes_to_tensor(scenes: list[Scene]) -> torch.Tensor:
    """Images of `scenes` as float (batch, 3, y, x) in [-1, 1]."""
    return images_to_tensor([s.image for s in scenes])
