"""Teaching ShapesWorld a word with a LoRA: the batches show the word's object, and the written
LoRA and word files reproduce the taught model in a fresh copy."""

import numpy as np
import pytest
import torch

from workbench.pipelines import insert_embeddings, load_lora, read_embeddings
from workbench.pipelines.loading import load_pipeline
from workbench.shapesworld.segmentation import segment_by_palette
from workbench.shapesworld.training.lora_word import LoraWordConfig, teach_to_folder, teach_word, word_batch
from workbench.shapesworld.vocabulary import COLORS

from ...shapes_fixtures import tiny_shapes_pipeline


def test_batches_show_the_words_object_captioned_with_the_token():
    images, captions = word_batch(LoraWordConfig(batch_size=4), np.random.default_rng(0), 32)
    assert all("<pc>" in c and "purple" not in c and "cross" not in c for c in captions)
    purple = list(COLORS).index("purple")
    assert all((segment_by_palette(((image.permute(1, 2, 0).numpy() + 1) / 2)) == purple).sum() > 10 for image in images)


def test_the_written_files_reproduce_the_taught_model(tmp_path):
    tiny_shapes_pipeline().save_pretrained(tmp_path / "base")
    cfg = LoraWordConfig(steps=3, batch_size=2)
    out = teach_to_folder(tmp_path / "base", tmp_path / "taught", cfg)
    assert {p.name for p in out.iterdir()} == {"lora.safetensors", "word.safetensors", "teach.json"}
    taught = load_pipeline(tmp_path / "base")
    teach_word(taught, cfg)
    fresh = load_pipeline(tmp_path / "base")
    insert_embeddings(fresh, read_embeddings(out / "word.safetensors"))
    assert load_lora(fresh, out / "lora.safetensors")
    generate = lambda pipe: pipe(["a large <pc> on a gray background"], num_inference_steps=2, output_type="np",  # noqa: E731
                                 generator=torch.Generator().manual_seed(0)).images
    for pipe in (taught, fresh):
        pipe.set_progress_bar_config(disable=True)
    assert np.allclose(generate(fresh), generate(taught), atol=1e-5)
    with pytest.raises(ValueError, match="teal cross is not a ShapesWorld object"):
        teach_word(load_pipeline(tmp_path / "base"), LoraWordConfig(color="teal"))
