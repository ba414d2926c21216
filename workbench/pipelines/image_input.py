"""Turn a user's images into an image encoder's input: whatever their mode or size, or a clear
error saying why not.

Accepted: PIL images (any mode), image files, numpy arrays (y, x), (y, x, 1), (y, x, 3) or
(y, x, 4), uint8 or float in [0, 1], and float tensors (batch, 3, y, x) in [0, 1]. Images are
made RGB (alpha composited on white, as a viewer shows it), then, as CLIP's image processor
does, resized so the shorter side fits and centre-cropped to a square.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

ImageLike = Union[Image.Image, str, Path, np.ndarray]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")  # what folders of images are read for


def image_files(folder: str | Path) -> list[Path]:
    """The image files in `folder` (by suffix), in name order; none when it is not a folder."""
    folder = Path(folder)
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def _as_pil(image: ImageLike, index: int) -> Image.Image:
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as opened:
                opened.load()
                return opened.copy()
        except (FileNotFoundError, UnidentifiedImageError, OSError) as error:
            raise ValueError(f"image {index}: cannot read {image} as an image ({error})") from None
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        return _array_to_pil(image, index)
    raise TypeError(f"image {index}: expected a PIL image, a file path or a numpy array, got {type(image).__name__}")


def _array_to_pil(array: np.ndarray, index: int) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)) or 0 in array.shape:
        raise ValueError(f"image {index}: expected an array (y, x) or (y, x, 1|3|4 channels), got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"image {index}: expected uint8 or float values in [0, 1], got dtype {array.dtype}")
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError(f"image {index}: float values must lie in [0, 1], got [{np.nanmin(array):.3g}, {np.nanmax(array):.3g}]")
        array = (array * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def eight_bit(image: Image.Image) -> Image.Image:
    """An image of 16-bit or 32-bit integer or float samples ("I;16", "I", "F") as 8-bit
    greyscale ("L") on its own scale: 16-bit and integer values / 257, floats in [0, 1] x 255.
    PIL's own conversion clips them at 255 (a 16-bit picture comes out white). Other modes are
    returned as they are."""
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F" and np.nanmax(values, initial=0) <= 1.0:
        values = values * 255.0
    elif image.mode != "F":
        values = values / 257.0
    return Image.fromarray(np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8), "L")


def _rgb(image: Image.Image) -> Image.Image:
    image = eight_bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _square(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.Resampling.BICUBIC)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))


def encoder_pixels(images: Sequence[ImageLike] | torch.Tensor, size: int) -> torch.Tensor:
    """Float (batch, 3, size, size) in [0, 1] for an image encoder.

    Raises:
        ValueError / TypeError: naming the image (by position) and what was expected.
    """
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(f"an image tensor must be float (batch, 3, y, x) in [0, 1], got {images.dtype} {tuple(images.shape)}")
        if images.shape[-2:] != (size, size):
            images = torch.nn.functional.interpolate(images, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        return images.clamp(0, 1)
    if isinstance(images, (Image.Image, str, Path, np.ndarray)):
        images = [images]
    if len(images) == 0:
        raise ValueError("no images given")
    squares = [np.asarray(_square(_rgb(_as_pil(image, i)), size)) for i, image in enumerate(images)]
    return torch.from_numpy(np.stack(squares)).permute(0, 3, 1, 2).float() / 255
