"""Regions of generated images, for leakage and localisation: where each word *should* attend.

A region source is called once per generated image, after generation, with the prompt's
index, the traced maps and the image, and returns the image's `Regions` (or None when it knows
none for that prompt). Three come with the product:

- `mask_folder(folder)`: masks the user drew or segmented, one image file per prompt and
  region, named `<prompt>_<region>.png` (prompt: its 0-based index in the probe's prompts;
  region: a name). A word names a region when the region's name is the word with the
  characters that file names cannot hold (`<>:"/\\|?*`) left out: `0_<cat-toy>.png` cannot be
  written, `0_cat-toy.png` is the region of `<cat-toy>` in prompt 0; `0_background.png` is
  the background. Masks are read as white = inside (any mode; alpha counts as inside when
  present) and resized to the image with nearest-neighbour sampling.
- `UnsupervisedRegions()`: no labels at all, as ConceptExpress: the salient clusters of the
  finest self-attention (`capture.unsupervised_masks`) are the regions "cluster 1", ...; the
  rest is "background". No word owns a cluster (nothing says which it should), so each word
  gets its mass on every region (leakage) but no localisation score.
- the embedded ShapesWorld's palette segmentation of its captions (`workbench.shapesworld.regions`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..capture import AttentionMaps, unsupervised_masks
from ..pipelines.image_input import IMAGE_SUFFIXES as MASK_SUFFIXES
from ..pipelines.image_input import eight_bit

UNSAFE_IN_FILE_NAMES = re.compile(r'[<>:"/\\|?*]')


class MaskFolderError(ValueError):
    """A mask folder that does not fit the prompts (names the file, prompt and region)."""


@dataclass(frozen=True)
class Regions:
    """The known regions of one generated image.

    masks: region name -> (y, x) bool mask at the image's size, or None for a region the
        prompt names but the image does not show (e.g. an object drawn in the wrong colour).
    words: (word, occurrence) -> (role, region name or None): the words scored, each with the
        region it should attend to (None: no region is its own); `role` groups words in
        tables ("color", or the word).
    """

    masks: dict[str, np.ndarray | None]
    words: dict[tuple[str, int], tuple[str, str | None]]


# (prompt index, the traced maps, generated image (y, x, 3) uint8) -> regions or None
RegionSource = Callable[[int, AttentionMaps, np.ndarray], "Regions | None"]


def file_name_of(word: str) -> str:
    """The region name a word's mask file carries: the word without `<>:"/\\|?*`."""
    return UNSAFE_IN_FILE_NAMES.sub("", word)


def read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A mask image as (y, x) bool at `size`: white (or opaque, with alpha) is inside.

    Raises:
        MaskFolderError: a file that is not a readable image (named).
    """
    try:
        with Image.open(path) as image:
            image.load()
            gray = image.getchannel("A") if "A" in image.getbands() else eight_bit(image).convert("L")
    except (UnidentifiedImageError, OSError) as error:
        raise MaskFolderError(f"{path}: not a readable image ({error})") from None
    return _inside(gray, size)


def _inside(gray: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """A grey mask resized to (y, x) = `size` with nearest-neighbour sampling, > 127 inside."""
    return np.asarray(gray.resize((size[1], size[0]), Image.Resampling.NEAREST)) > 127


def _mask_files(folder: Path) -> list[Path]:
    """The files of a mask folder, hidden ones left out, in name order."""
    if not folder.is_dir():
        raise MaskFolderError(f"mask folder {folder} does not exist or is not a folder")
    return sorted(path for path in folder.iterdir() if not path.name.startswith("."))


def _check_readable(path: Path) -> None:
    """Refuse a mask file that is not an image now, before a run writes anything."""
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise MaskFolderError(f"{path}: not a readable image ({error})") from None


def _index_mask_folder(folder: Path, n_prompts: int) -> dict[int, dict[str, Path]]:
    """prompt -> region -> file, checked: every file named `<prompt>_<region>`, every prompt
    in range and with at least one mask."""
    found: dict[int, dict[str, Path]] = {p: {} for p in range(n_prompts)}
    for path in _mask_files(folder):
        match = re.fullmatch(r"(\d+)_(.+)", path.stem)
        if path.suffix.lower() not in MASK_SUFFIXES or match is None:
            raise MaskFolderError(
                f"{path}: expected mask files named <prompt>_<region>.png (e.g. 0_cat.png, 0_background.png), "
                f"with one of the suffixes {', '.join(MASK_SUFFIXES)}"
            )
        prompt, region = int(match.group(1)), match.group(2)
        if prompt >= n_prompts:
            raise MaskFolderError(f"{path}: prompt {prompt} does not exist; the probe has {n_prompts} prompt(s), numbered from 0")
        if region in found[prompt]:
            raise MaskFolderError(f"{path}: prompt {prompt} has two masks for region {region!r} ({found[prompt][region].name})")
        _check_readable(path)
        found[prompt][region] = path
    missing = [p for p, regions in found.items() if not regions]
    if missing:
        raise MaskFolderError(f"mask folder {folder} has no masks for prompt(s) {missing}; expected files such as {missing[0]}_<region>.png")
    return found


def mask_folder(folder: str | Path, prompts: Sequence[str]) -> RegionSource:
    """A region source reading `folder` (see the module docstring); the folder is checked now.

    Raises:
        MaskFolderError: a missing folder, a file not named `<prompt>_<region>` with an image
            suffix, a prompt out of range, two masks of one region, or a prompt without masks.
    """
    folder = Path(folder)
    files = _index_mask_folder(folder, len(prompts))

    def regions(prompt: int, maps: AttentionMaps, image: np.ndarray) -> Regions:
        masks = {region: read_mask(path, image.shape[:2]) for region, path in files[prompt].items()}
        spans = maps.tokens.words[prompt]
        words = {(s.word, s.occurrence): (s.word, file_name_of(s.word)) for s in spans if file_name_of(s.word) in masks}
        return Regions(masks, words)

    return regions


def object_mask_folder(folder: str | Path, n: int) -> Callable[[int, np.ndarray], np.ndarray]:
    """Masks of the drawn object in n generated images, named `<index>.png` (0-based), for
    `compare_words(object_masks=...)`; the folder is checked now.

    Raises:
        MaskFolderError: a missing folder, a file not named `<index>` with an image suffix,
            an index out of range, or an example without its mask (lists which).
    """
    folder = Path(folder)
    files: dict[int, Path] = {}
    for path in _mask_files(folder):
        if path.suffix.lower() not in MASK_SUFFIXES or not path.stem.isdigit():
            raise MaskFolderError(f"{path}: expected object masks named <index>.png (0.png, 1.png, ...)")
        if int(path.stem) >= n:
            raise MaskFolderError(f"{path}: index {int(path.stem)} is out of range; there are {n} examples, numbered from 0")
        _check_readable(path)
        files[int(path.stem)] = path
    missing = sorted(set(range(n)) - set(files))
    if missing:
        raise MaskFolderError(f"mask folder {folder} has no mask for example(s) {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    return lambda index, image: read_mask(files[index], image.shape[:2])


@dataclass(frozen=True)
class UnsupervisedRegions:
    """A region source needing no labels (see the module docstring): `analyse_attention`
    captures the self-attention it reads (`self_layers`)."""

    n_clusters: int = 4
    self_layers: str = "all"

    def __call__(self, prompt: int, maps: AttentionMaps, image: np.ndarray) -> Regions:
        found = unsupervised_masks(maps, prompt=prompt, n_clusters=self.n_clusters)
        size = image.shape[:2]
        at_image_size = lambda mask: _inside(Image.fromarray(mask.astype(np.uint8) * 255), size)  # noqa: E731
        masks: dict[str, np.ndarray | None] = {f"cluster {i + 1}": at_image_size(m) for i, m in enumerate(found.masks())}
        masks["background"] = at_image_size(~found.foreground())
        words = {(s.word, s.occurrence): (s.word, None) for s in maps.tokens.words[prompt] if s.tokens}
        return Regions(masks, words)
