import numpy as np
import pytest
import torch
from PIL import Image

from workbench.pipelines.image_input import eight_bit, encoder_pixels
from workbench.shapesworld.models.word_encoder import WordEncoder, WordEncoderConfig


def test_modes_are_made_rgb_with_alpha_on_white():
    grey = Image.new("L", (32, 32), 128)
    assert torch.allclose(encoder_pixels([grey], 32), torch.full((1, 3, 32, 32), 128 / 255))
    clear_red = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # fully transparent: white shows
    half_red = Image.new("RGBA", (32, 32), (255, 0, 0, 128))
    pixels = encoder_pixels([clear_red, half_red], 32)
    assert torch.allclose(pixels[0], torch.ones(3, 32, 32))
    assert torch.allclose(pixels[1, :, 0, 0], torch.tensor([1.0, 127 / 255, 127 / 255]), atol=2 / 255)
    palette = Image.new("RGB", (32, 32), (0, 0, 255)).convert("P")
    assert torch.allclose(encoder_pixels([palette], 32)[0, :, 5, 5], torch.tensor([0.0, 0.0, 1.0]))


def test_other_sizes_are_resized_and_centre_cropped():
    wide = np.zeros((64, 128, 3), np.uint8)
    wide[:, 32:96] = 255  # the centre square is white, the sides black
    pixels = encoder_pixels([wide], 32)
    assert pixels.shape == (1, 3, 32, 32)
    inner = pixels[..., 2:-2]  # bicubic resampling lets the black sides bleed one pixel in
    assert torch.allclose(inner, torch.ones_like(inner), atol=1e-6) and pixels.min() > 0.5
    assert encoder_pixels(torch.rand(2, 3, 64, 64), 32).shape == (2, 3, 32, 32)


def test_arrays_files_and_single_images(tmp_path):
    array = np.random.default_rng(0).random((32, 32, 3))
    expected = torch.from_numpy((array * 255).round().astype(np.uint8)).permute(2, 0, 1).float()[None] / 255
    assert torch.allclose(encoder_pixels(array, 32), expected)
    Image.fromarray((array * 255).round().astype(np.uint8)).save(tmp_path / "x.png")
    assert torch.allclose(encoder_pixels([tmp_path / "x.png"], 32), expected)
    assert encoder_pixels(np.zeros((32, 32, 1), np.uint8), 32).shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((32, 32, 2), np.uint8), r"image 0: expected an array \(y, x\) or \(y, x, 1\|3\|4 channels\), got shape \(32, 32, 2\)"),
        (np.full((32, 32, 3), 2.0), r"float values must lie in \[0, 1\], got \[2, 2\]"),
        (np.zeros((32, 32, 3), np.int64), "dtype int64"),
        (torch.rand(3, 32, 32), r"float \(batch, 3, y, x\)"),
        ([], "no images"),
    ],
)
def test_what_cannot_be_converted_is_explained(bad, message):
    with pytest.raises(ValueError, match=message):
        encoder_pixels(bad, 32)


def test_unreadable_files_and_types_are_named(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="image 1: cannot read .*notes.txt as an image"):
        encoder_pixels([np.zeros((8, 8), np.uint8), tmp_path / "notes.txt"], 32)
    with pytest.raises(TypeError, match="image 0: expected a PIL image, a file path or a numpy array, got int"):
        encoder_pixels([3], 32)


def test_the_encoder_takes_a_users_image_of_any_size_and_mode():
    encoder = WordEncoder(WordEncoderConfig(width=16, layers=2, heads=2, mapping_hidden=16, feature_layers=(2, 1))).eval()
    image = Image.new("RGBA", (100, 60), (10, 200, 30, 255))
    words = encoder.encode(image)
    assert words.shape == (1, 2, 64)
    assert torch.allclose(words, encoder(encoder_pixels([image], 32)))


@pytest.mark.parametrize("mode, values, expected", [
    ("I;16", np.array([[0, 65535], [32896, 257]], dtype=np.uint16), [[0, 255], [128, 1]]),
    ("F", np.array([[0.0, 1.0], [0.5, 0.25]], dtype=np.float32), [[0, 255], [128, 64]]),
])
def test_deep_images_keep_their_scale_instead_of_clipping_to_white(mode, values, expected):
    image = Image.fromarray(values)
    assert image.mode == mode
    assert np.array_equal(np.asarray(eight_bit(image)), np.array(expected, dtype=np.uint8))
    pixels = encoder_pixels([image], 2)
    assert torch.allclose(pixels[0, 0] * 255, torch.tensor(expected, dtype=torch.float32), atol=0.5)
