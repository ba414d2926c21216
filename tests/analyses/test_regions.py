"""Mask folders: every mistake named before a run writes anything; masks of any depth read faithfully."""

import numpy as np
import pytest
from PIL import Image

from workbench.analyses.regions import MaskFolderError, mask_folder, object_mask_folder, read_mask


def write(folder, name, array):
    folder.mkdir(exist_ok=True)
    Image.fromarray(array).save(folder / name)


@pytest.mark.parametrize("files, message", [
    ({"0_cat.png": None, "0_cat.jpg": None}, "prompt 0 has two masks for region 'cat'"),
    ({"0_cat.png": None, "2_cat.png": None}, "prompt 2 does not exist; the probe has 2 prompt"),
    ({"0_cat.png": None}, r"has no masks for prompt\(s\) \[1\]"),
    ({"0_cat.png": None, "1_dog.png": None, "cat.png": None}, "expected mask files named <prompt>_<region>.png"),
    ({"0_cat.png": None, "1_dog.png": b"not an image"}, "1_dog.png: not a readable image"),
])
def test_mask_folder_mistakes_are_named(tmp_path, files, message):
    folder = tmp_path / "masks"
    for name, content in files.items():
        if content is None:
            write(folder, name, np.zeros((4, 4), np.uint8))
        else:
            folder.mkdir(exist_ok=True)
            (folder / name).write_bytes(content)
    with pytest.raises(MaskFolderError, match=message):
        mask_folder(folder, ["a cat", "a dog"])


def test_object_mask_folder_mistakes_are_named(tmp_path):
    folder = tmp_path / "objects"
    write(folder, "0.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(MaskFolderError, match=r"no mask for example\(s\) \[1, 2\]"):
        object_mask_folder(folder, 3)
    (folder / "1.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(MaskFolderError, match="1.png: not a readable image"):
        object_mask_folder(folder, 2)
    with pytest.raises(MaskFolderError, match="does not exist or is not a folder"):
        object_mask_folder(tmp_path / "nowhere", 1)


def test_masks_of_any_depth_and_alpha_read_as_drawn(tmp_path):
    half = np.zeros((4, 4), np.uint16)
    half[:, 2:] = 65535  # a 16-bit mask: white on the right half
    write(tmp_path, "deep.png", half)
    expected = np.zeros((4, 4), bool)
    expected[:, 2:] = True
    assert np.array_equal(read_mask(tmp_path / "deep.png", (4, 4)), expected)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:, 2:, 3] = 255  # opaque on the right half, colour irrelevant
    write(tmp_path, "alpha.png", rgba)
    assert np.array_equal(read_mask(tmp_path / "alpha.png", (8, 8)), np.repeat(np.repeat(expected, 2, 0), 2, 1))
