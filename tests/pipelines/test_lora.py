"""LoRA files into a pipeline: a LoRA saved from one SD 1.5 pipeline reproduces its outputs in
another; one made for another model is refused naming the file and its first misfitting key."""

import pytest
import torch
from safetensors.torch import save_file

from workbench.pipelines import LoraFileError, load_lora
from workbench.pipelines.random_pipelines import build_random_pipeline


def lora_pipeline(family, folder):
    from peft import LoraConfig

    pipe = build_random_pipeline(family, folder, tokenizer="bpe", sample_size=8)
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(3)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_k", "to_q", "to_v", "to_out.0"], init_lora_weights=False))
    return pipe


def save_lora(pipe, folder):
    from peft import get_peft_model_state_dict

    type(pipe).save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(pipe.unet))
    return folder / "pytorch_lora_weights.safetensors"


def generate(pipe):
    return pipe("a red cat", num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0)).images


def test_a_saved_lora_reproduces_the_adapted_pipeline(tmp_path):
    adapted = lora_pipeline("sd15", tmp_path / "a")
    file = save_lora(adapted, tmp_path / "lora")
    fresh = build_random_pipeline("sd15", tmp_path / "b", tokenizer="bpe", sample_size=8)
    fresh.set_progress_bar_config(disable=True)
    plain = generate(fresh)
    modules = load_lora(fresh, file)
    assert len(modules) == 4 * sum(1 for name, _ in fresh.unet.named_modules() if name.endswith((".attn1", ".attn2")))  # q, k, v, out
    assert modules[0].startswith("unet.") and (generate(fresh) == generate(adapted)).all() and not (generate(fresh) == plain).all()


def test_a_lora_for_another_model_is_refused_naming_the_file_and_key(tmp_path):
    file = save_lora(lora_pipeline("sdxl", tmp_path / "xl"), tmp_path / "lora")
    sd = build_random_pipeline("sd15", tmp_path / "sd", tokenizer="bpe", sample_size=8)
    with pytest.raises(LoraFileError, match=r"pytorch_lora_weights.safetensors: the LoRA does not fit StableDiffusionPipeline: "
                                            r"unet\..*lora_A.weight: unet\..* has \d+ input features, the LoRA \d+"):
        load_lora(sd, file)
    save_file({"unet.nowhere.lora_A.weight": torch.zeros(4, 8)}, tmp_path / "nowhere.safetensors")
    with pytest.raises(LoraFileError, match=r"nowhere.safetensors: .* unet.nowhere.lora_A.weight: StableDiffusionPipeline has no module unet.nowhere"):
        load_lora(sd, tmp_path / "nowhere.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(LoraFileError, match="junk.safetensors: not a safetensors LoRA file"):
        load_lora(sd, tmp_path / "junk.safetensors")
    with pytest.raises(LoraFileError, match="does not exist"):
        load_lora(sd, tmp_path / "missing.safetensors")
    assert not any(hasattr(m, "lora_A") for m in sd.unet.modules())  # nothing was loaded
