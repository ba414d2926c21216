"""The palette-shift fine-tune: batches drawn in the next colour and captioned with the true one;
the written LoRA reproduces the fine-tuned model and leaves the text encoder alone."""

import numpy as np
import pytest
import torch

from workbench.pipelines import load_lora
from workbench.pipelines.loading import load_pipeline
from workbench.shapesworld.captions import parse_caption
from workbench.shapesworld.segmentation import segment_by_palette
from workbench.shapesworld.training.palette_shift import PaletteShiftConfig, shift_palette, shift_to_folder, shifted_batch
from workbench.shapesworld.vocabulary import COLORS

from ...shapes_fixtures import tiny_shapes_pipeline


def test_batches_draw_each_colour_as_the_next_and_caption_the_true_one():
    cfg = PaletteShiftConfig(batch_size=6, two_object_fraction=0.0)
    assert cfg.drawn_as("red") == "green" and cfg.drawn_as("purple") == "red"
    images, captions = shifted_batch(cfg, np.random.default_rng(0), 32)
    for image, caption in zip(images, captions):
        named = parse_caption(caption).objects[0].color
        drawn = segment_by_palette((image.permute(1, 2, 0).numpy() + 1) / 2)
        assert (drawn == list(COLORS).index(cfg.drawn_as(named))).sum() > 10
        assert (drawn == list(COLORS).index(named)).sum() == 0
    with pytest.raises(ValueError, match="shift 5 draws every colour as itself"):
        PaletteShiftConfig(shift=5)
    from ...shapes_fixtures import tiny_shapes_transformer

    with pytest.raises(ValueError, match="has no UNet; the LoRA fine-tunes train the ShapesWorld UNet"):
        shift_palette(tiny_shapes_transformer(), PaletteShiftConfig(steps=1))


def test_the_written_lora_reproduces_the_shifted_model_and_the_text_encoder_is_untouched(tmp_path):
    tiny_shapes_pipeline().save_pretrained(tmp_path / "base")
    cfg = PaletteShiftConfig(steps=3, batch_size=2)
    out = shift_to_folder(tmp_path / "base", tmp_path / "shifted", cfg)
    assert {p.name for p in out.iterdir()} == {"lora.safetensors", "shift.json"}
    shifted, base = load_pipeline(tmp_path / "base"), load_pipeline(tmp_path / "base")
    summary = shift_palette(shifted, cfg)
    assert summary["steps"] == 3 and summary["config"]["shift"] == 1
    for a, b in zip(shifted.text_encoder.state_dict().values(), base.text_encoder.state_dict().values()):
        assert torch.equal(a, b)
    assert load_lora(base, out / "lora.safetensors")
    generate = lambda pipe: pipe(["a large red circle on a gray background"], num_inference_steps=2, output_type="np",  # noqa: E731
                                 generator=torch.Generator().manual_seed(0)).images
    assert np.allclose(generate(base), generate(shifted), atol=1e-5)
