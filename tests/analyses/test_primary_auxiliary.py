import numpy as np
import pytest

import torch
from safetensors.torch import save_file

from workbench.analyses import compare_words
from workbench.analyses.primary_auxiliary import words_of
from workbench.pipelines.elite import ELITEEncoder, load_global_mapper
from workbench.pipelines.embeddings import read_embeddings
from workbench.pipelines.random_pipelines import save_random_pipeline
from workbench.pipelines.loading import load_pipeline
from workbench.shapesworld.models.word_encoder import WordEncoder, WordEncoderConfig
from workbench.shapesworld import sample_scenes
from workbench.shapesworld.comparison import comparison_inputs

from ..pipelines.test_elite import elite_checkpoint


@pytest.fixture(scope="module")
def comparison():
    from ..shapes_fixtures import tiny_shapes_pipeline

    pipe = tiny_shapes_pipeline()
    encoder = WordEncoder(WordEncoderConfig(width=16, layers=2, heads=2, text_width=16, mapping_hidden=16, feature_layers=(2, 1, 1)))
    scenes = sample_scenes(24, seed=0, n_objects=1)
    return compare_words(pipe, encoder, **comparison_inputs(scenes), steps=2, batch_size=12)


def test_every_part_of_the_comparison_has_its_shape(comparison):
    assert comparison.names == ["w0", "w1", "w2"]
    assert comparison.words.shape == (24, 3, 16) and comparison.norms.shape == (24, 3)
    assert comparison.cosine.shape == (3, 3) and np.allclose(np.diag(comparison.cosine), 1.0)
    assert comparison.object_mass.shape == (24, 3)
    assert ((comparison.object_mass >= 0) & (comparison.object_mass <= 1)).all()
    assert comparison.probes.accuracy.shape == (3, 6)
    assert comparison.probes.factors == ("shape", "color", "size", "background", "x", "y")
    assert set(comparison.nearest["query"]) == {"w0", "w1", "w2"}
    assert not set(comparison.nearest.token) & {"S*", "S*_1", "S*_2"}
    assert set(comparison.disentanglement) >= {"mig", "dci_disentanglement", "infom", "infoe", "infoc"}
    assert comparison.generated.shape == (24, 32, 32, 3)
    frame = comparison.to_frame()
    assert len(frame) == 72 and list(frame.columns) == ["image", "word", "norm", "object_mass"]


def test_bad_input_is_explained():
    from ..shapes_fixtures import tiny_shapes_pipeline

    pipe, encoder = tiny_shapes_pipeline(), WordEncoder(WordEncoderConfig(text_width=16))
    with pytest.raises(ValueError, match="must contain the placeholder"):
        compare_words(pipe, encoder, **comparison_inputs(sample_scenes(24, n_objects=1)), template="a photo")
    with pytest.raises(ValueError, match="one-object scenes"):
        comparison_inputs(sample_scenes(24, n_objects=2))
    with pytest.raises(ValueError, match="need images to encode"):
        compare_words(pipe, encoder)
    with pytest.raises(ValueError, match="need images to encode; got none"):
        compare_words(pipe, encoder, images=[])
    with pytest.raises(ValueError, match=r"non-empty \(examples, n_words, width\) array, got shape \(0, 3, 16\)"):
        compare_words(pipe, torch.zeros(0, 3, 16))
    with pytest.raises(ValueError, match="labels have 3 rows but there are 2 examples"):
        compare_words(pipe, torch.randn(2, 3, 16), labels=comparison_inputs(sample_scenes(3, n_objects=1))["labels"])


@pytest.fixture(scope="module")
def sd_elite(tmp_path_factory):
    """A random SD 1.5-architecture folder with an ELITE-layout global mapper on a small CLIP
    vision model (the user's ELITE: vision model + global_mapper.pt)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    root = tmp_path_factory.mktemp("elite")
    pipe = load_pipeline(save_random_pipeline("sd15", root, tokenizer="bpe", sample_size=8))
    pipe.set_progress_bar_config(disable=True)
    elite_checkpoint(pipe.unet, root / "global_mapper.pt", n_words=2)
    mapper = load_global_mapper(root / "global_mapper.pt", pipe.unet, input_dim=8, output_dim=32, hidden=16)
    torch.manual_seed(0)
    vision = CLIPVisionModel(CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=8, intermediate_size=16, num_hidden_layers=3, num_attention_heads=2))
    return pipe, ELITEEncoder(vision, mapper, feature_layers=(3, 1)).eval()


def test_an_elite_encoder_on_stable_diffusion_with_the_users_images(sd_elite, tmp_path):
    from PIL import Image

    pipe, encoder = sd_elite
    files = []
    for i in range(3):
        Image.new("RGBA", (50 + i, 40), (40 * i, 200, 90, 255)).save(tmp_path / f"{i}.png")
        files.append(tmp_path / f"{i}.png")
    result = compare_words(pipe, encoder, images=files, steps=2)
    assert result.words.shape == (3, 2, 32) and result.generated.shape == (3, 64, 64, 3)
    assert result.object_mass is None and result.probes is None and result.disentanglement is None
    assert "no object masks given" in result.absent["object_mass"] and "no factor labels given" in result.absent["probes"]
    assert result.to_frame().object_mass.isna().all()
    half = lambda index, image: np.arange(64)[None, :].repeat(64, 0) < 32  # noqa: E731 - the left half as the object
    masked = compare_words(pipe, encoder, images=files, steps=2, object_masks=half)
    assert masked.object_mass.shape == (3, 2) and ((masked.object_mass >= 0) & (masked.object_mass <= 1)).all()


def test_learned_word_files_as_the_word_source(sd_elite, tmp_path):
    pipe, _ = sd_elite
    for i in range(2):
        save_file({"emb_params": torch.randn(3, 32)}, tmp_path / f"style{i}.safetensors")
    words = words_of([read_embeddings(tmp_path / f"style{i}.safetensors") for i in range(2)])
    assert words.shape == (2, 3, 32)
    result = compare_words(pipe, words, steps=2)
    assert result.names == ["w0", "w1", "w2"] and result.nearest["query"].nunique() == 3
    save_file({"emb_params": torch.randn(2, 32)}, tmp_path / "short.safetensors")
    with pytest.raises(ValueError, match=r"short.safetensors have \(2, 32\)"):
        words_of([read_embeddings(tmp_path / "style0.safetensors"), read_embeddings(tmp_path / "short.safetensors")])


def test_learned_words_of_three_encoders_on_sd3(tmp_path):
    """SD3 words (kohya: clip_l, clip_g, t5xxl): each word enters all three encoders, the
    template is expanded since SD3's pipeline does not expand learned words, and each word's
    attention mass is read on its own slots in the CLIP and T5 keys."""
    from workbench.pipelines.random_pipelines import build_random_pipeline

    pipe = build_random_pipeline("sd3", tmp_path, sample_size=8)
    pipe.set_progress_bar_config(disable=True)
    widths = {"clip_l": 32, "clip_g": 32, "t5xxl": 64}
    for i in range(2):
        save_file({k: torch.randn(2, w) for k, w in widths.items()}, tmp_path / f"w{i}.safetensors")
    words = words_of([read_embeddings(tmp_path / f"w{i}.safetensors") for i in range(2)])
    left = lambda i, image: np.arange(image.shape[1])[None, :].repeat(image.shape[0], 0) < image.shape[1] // 2  # noqa: E731
    result = compare_words(pipe, words, steps=2, object_masks=left)
    assert result.words.shape == (2, 2, 128)  # CLIP-L, CLIP-G and T5 vectors side by side
    assert result.object_mass.shape == (2, 2) and ((result.object_mass > 0) & (result.object_mass < 1)).all()
    assert result.nearest["query"].nunique() == 2
