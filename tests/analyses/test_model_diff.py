"""Two models compared word by word: zero change for a model against itself, a change where
weights were changed (a perturbed text encoder moves encoder outputs and heat maps; a LoRA on the
UNet moves heat maps but not the text encoder), what differs named when architectures differ."""

import copy

import numpy as np
import pytest
import torch

from workbench.analyses import compare_models
from workbench.pipelines.random_pipelines import build_random_pipeline

PROMPTS = ["a red cat on a sofa", "a dog in the garden"]


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    pipe = build_random_pipeline("sd15", tmp_path_factory.mktemp("sd"), tokenizer="bpe", sample_size=8)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_a_model_against_itself_changes_nothing(sd):
    diff = compare_models(sd, sd, PROMPTS, steps=2)
    words = diff.to_frame()
    assert len(words) == sum(len(p.split()) for p in PROMPTS)
    assert np.allclose(words.heat_overlap, 1.0) and np.allclose(words.encoder_cosine, 1.0) and np.allclose(words.encoder_norm_ratio, 1.0)
    assert np.allclose(diff.embeddings.cosine, 1.0) and (diff.embeddings.nearest_base == diff.embeddings.nearest_other).all()
    assert diff.differences == [] and words.mass_moved.isna().all()  # no regions given


def test_a_perturbed_text_encoder_moves_outputs_and_maps(sd):
    other = copy.deepcopy(sd)
    with torch.no_grad():
        layer = other.text_encoder.text_model.encoder.layers[0] if hasattr(other.text_encoder, "text_model") else other.text_encoder.encoder.layers[0]
        layer.mlp.fc2.weight.add_(torch.randn(layer.mlp.fc2.weight.shape, generator=torch.Generator().manual_seed(0)) * 0.5)
    words = compare_models(sd, other, PROMPTS, names=("base", "erased"), steps=2).to_frame()
    assert (words.encoder_cosine < 0.999).all() and (words.heat_overlap < 1.0).any()
    diff = compare_models(sd, other, PROMPTS[:1], steps=2)
    assert np.allclose(diff.embeddings.cosine, 1.0)  # the input embeddings were not touched


def test_a_lora_on_the_unet_moves_maps_not_the_text_encoder(sd):
    from peft import LoraConfig

    other = copy.deepcopy(sd)
    other.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_k", "to_q", "to_v", "to_out.0"], init_lora_weights=False))
    words = compare_models(sd, other, PROMPTS, names=("base", "lora"), steps=2).to_frame()
    assert np.allclose(words.encoder_cosine, 1.0)
    assert (words.heat_overlap < 0.999).all()


def test_regions_give_the_mass_moved_and_other_architectures_are_named(sd, tmp_path):
    from workbench.analyses.regions import Regions

    def halves(prompt, maps, image):
        left = np.zeros(image.shape[:2], bool)
        left[:, : image.shape[1] // 2] = True
        return Regions(masks={"left": left, "right": ~left}, words={})

    shifted = copy.deepcopy(sd)
    with torch.no_grad():
        for p in shifted.unet.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.05)
    words = compare_models(sd, shifted, PROMPTS[:1], steps=2, regions=halves).to_frame()
    assert words.mass_moved.between(0, 1).all() and (words.mass_moved > 0).any()
    xl = build_random_pipeline("sdxl", tmp_path, tokenizer="bpe", sample_size=8)
    xl.set_progress_bar_config(disable=True)
    diff = compare_models(sd, xl, PROMPTS[:1], steps=2)
    assert any(d.startswith("pipelines: StableDiffusionPipeline vs StableDiffusionXLPipeline") for d in diff.differences)
    assert any("text-encoder outputs not compared: widths 32 and 64" in d for d in diff.differences)
    assert diff.to_frame().encoder_cosine.isna().all() and diff.to_frame().heat_overlap.notna().all()


def test_a_diff_probe_compares_a_folder_and_a_lora_and_refuses_what_does_not_fit(sd, tmp_path, monkeypatch):
    """[diff] against a fine-tuned folder and the probe's model + a LoRA: the tables, the
    before | after | difference figure; a LoRA of another model refused before anything is written."""
    import json

    import pandas as pd
    from peft import LoraConfig, get_peft_model_state_dict

    from workbench.pipelines.random_pipelines import save_random_pipeline
    from workbench.pipelines.loading import load_pipeline
    from workbench.probes import ProbeError, run_probe

    monkeypatch.chdir(tmp_path)
    base = save_random_pipeline("sd15", tmp_path / "base", tokenizer="bpe", sample_size=8)
    tuned = load_pipeline(base)
    with torch.no_grad():
        tuned.unet.conv_in.weight.mul_(1.5)
    tuned.save_pretrained(tmp_path / "tuned")
    adapted = load_pipeline(base)
    adapted.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_k", "to_q", "to_v"], init_lora_weights=False))
    type(adapted).save_lora_weights(tmp_path / "lora", unet_lora_layers=get_peft_model_state_dict(adapted.unet))
    head = f'name = "d"\n[model]\npipeline = "{base}"\nsteps = 2\n[inputs]\nprompts = {json.dumps(PROMPTS)}\n'
    (tmp_path / "d.toml").write_text(head + f'[diff]\nagainst = ["{tmp_path / "tuned"}", "lora:lora/pytorch_lora_weights.safetensors"]\n')
    run = run_probe(tmp_path / "d.toml", tmp_path / "run")
    words = pd.read_parquet(run / "diff" / "words.parquet")
    assert set(words.against) == {"tuned", "+ LoRA pytorch_lora_weights"}
    assert np.allclose(words.encoder_cosine, 1.0) and (words.heat_overlap < 0.999).any()
    page = (run / "dashboard.html").read_text()
    assert "Base | tuned | difference" in page and "Which words changed: base against + LoRA pytorch_lora_weights" in page
    xl = build_random_pipeline("sdxl", tmp_path / "xl", tokenizer="bpe", sample_size=8)
    xl.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_k"], init_lora_weights=False))
    type(xl).save_lora_weights(tmp_path / "xl-lora", unet_lora_layers=get_peft_model_state_dict(xl.unet))
    (tmp_path / "bad.toml").write_text(head + '[diff]\nagainst = ["lora:xl-lora/pytorch_lora_weights.safetensors"]\n')
    with pytest.raises(ProbeError, match=r"bad.toml: \[diff\] against 'lora:xl-lora/.*': .*pytorch_lora_weights.safetensors: the LoRA does not fit"):
        run_probe(tmp_path / "bad.toml", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_concepts_compared_across_models_and_presence_with_intervals():
    from workbench.analyses import compare_concepts, presence
    from workbench.concepts import ConceptSet, sets_from_pool
    from workbench.shapesworld import color_present

    from ..shapes_fixtures import tiny_shapes_pipeline

    base = tiny_shapes_pipeline()
    reds = ConceptSet("red", prompts=tuple(f"a {s} red {shape}" for s in ("small", "large") for shape in ("circle", "square", "cross")))
    pool = ConceptSet("pool", prompts=tuple(f"a {s} {c} {shape}" for s in ("small", "large") for c in ("blue", "green") for shape in ("circle", "square", "cross")))
    inputs = ConceptSet("inputs", prompts=("a red circle", "a blue square", "a green cross"))
    redness = lambda images: images[:, 0].mean((1, 2)) - images[:, 2].mean((1, 2))  # noqa: E731
    layers = ["unet.mid_block", "text_encoder.encoder.layers.0"]
    same = compare_concepts(base, base, redness, inputs, [reds], sets_from_pool(pool, 3, 6, seed=0), layers)
    assert np.allclose(same.cav_cosine, 1.0) and (same.tcav_base == same.tcav_other).all()
    assert (same.cav_accuracy_base == same.cav_accuracy_other).all() and list(same.layer) == layers
    erased = copy.deepcopy(base)
    with torch.no_grad():
        erased.text_encoder.encoder.layers[0].mlp.fc2.weight.mul_(-1.0)
    moved = compare_concepts(base, erased, redness, inputs, [reds], sets_from_pool(pool, 3, 6, seed=0), layers)
    assert (moved.cav_cosine < 0.999).all()

    always = presence(base, ["a red circle", "a blue square"], lambda images: np.ones(len(images), bool), images_per_prompt=3, steps=2)
    assert list(always.n) == [3, 3] and (always.rate == 1.0).all() and (always.low < 1).all() and np.allclose(always.high, 1.0)
    drawn = presence(base, ["a red circle"], color_present("red"), images_per_prompt=2, steps=2)
    assert drawn.present[0] in (0, 1, 2) and 0 <= drawn.low[0] <= drawn.rate[0] <= drawn.high[0] <= 1
    with pytest.raises(ValueError, match=r"expected one bool per image, \(2,\)"):
        presence(base, ["a red circle"], lambda images: np.ones(5, bool), images_per_prompt=2, steps=2)
    with pytest.raises(ValueError, match="'teal' is not a ShapesWorld colour"):
        color_present("teal")
