"""Teach the ShapesWorld model a new word with a LoRA (`workbench world teach`): one token for one
shape-colour combination ("<pc>" = a purple cross), learned as DreamBooth-with-LoRA and textual
inversion do together: the UNet's attention gets a low-rank update and the token its own
embedding, trained on scenes of that combination captioned with the token. The result is small
(a LoRA file and a learned-word file) and its effect known, for the model-diff audits.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from workbench.files import atomic_path
from workbench.pipelines.embeddings import LearnedWord, insert_embeddings

from ..scenes import sample_scene, scenes_to_tensor
from ..vocabulary import COLORS, SHAPES
from .denoising import noised_batch, weighted_error

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


@dataclass(frozen=True)
class LoraWordConfig:
    token: str = "<pc>"
    color: str = "purple"
    shape: str = "cross"
    steps: int = 300
    batch_size: int = 8
    learning_rate: float = 1e-3
    rank: int = 4
    min_snr_gamma: float = 5.0
    seed: int = 0


def word_batch(cfg: LoraWordConfig, rng: np.random.Generator, image_size: int) -> tuple[torch.Tensor, list[str]]:
    """Scenes of one object of the word's colour and shape, captioned with the token in place of
    "colour shape": (images (batch, 3, y, x) in [-1, 1], captions)."""
    scenes = []
    for _ in range(cfg.batch_size):
        scene = sample_scene(rng, 1, image_size, "train")
        scenes.append(dataclasses.replace(scene, objects=(dataclasses.replace(scene.objects[0], color=cfg.color, shape=cfg.shape),)))
    captions = [s.caption.replace(f"{cfg.color} {cfg.shape}", cfg.token) for s in scenes]
    return scenes_to_tensor(scenes), captions


def teach_word(pipe, cfg: LoraWordConfig = LoraWordConfig()) -> dict:
    """Teach the word to `pipe` in place (a UNet ShapesWorld pipeline): a LoRA on the UNet's
    attention and the token's embedding. Returns a summary (steps, seconds, losses).

    Raises:
        ValueError: a colour or shape not in ShapesWorld, or a token the tokenizer already has.
    """
    if cfg.color not in COLORS or cfg.shape not in SHAPES:
        raise ValueError(f"{cfg.color} {cfg.shape} is not a ShapesWorld object; colours: {', '.join(COLORS)}; shapes: {', '.join(SHAPES)}")
    width = pipe.text_encoder.get_input_embeddings().embedding_dim
    with torch.no_grad():  # start from the two words it stands for
        ids = pipe.tokenizer([f"{cfg.color} {cfg.shape}"], add_special_tokens=False).input_ids[0]
        start = pipe.text_encoder.get_input_embeddings().weight[ids].mean(0, keepdim=True)
    insert_embeddings(pipe, [LearnedWord(cfg.token, start.reshape(1, width).clone())])
    token_id = pipe.tokenizer.convert_tokens_to_ids(cfg.token)
    summary = train_lora(pipe, lambda rng: word_batch(cfg, rng, pipe.unet.config.sample_size), cfg.steps, cfg.rank, cfg.learning_rate,
                         cfg.min_snr_gamma, cfg.seed, desc=f"teach {cfg.token}", token_id=token_id)
    return summary | {"config": dataclasses.asdict(cfg)}


def train_lora(pipe, batches: Callable[[np.random.Generator], tuple[torch.Tensor, list[str]]], steps: int, rank: int, learning_rate: float,
               min_snr_gamma: float, seed: int, desc: str, token_id: int | None = None) -> dict:
    """Add a LoRA to `pipe.unet`'s attention and train it (and, given `token_id`, that token's
    embedding row) on `batches(rng)` -> (images (batch, 3, y, x) in [-1, 1], captions), in
    place. Returns steps, seconds and the mean loss of the first and last 10 steps.

    Raises:
        ValueError: a pipeline without a UNet (the ShapesWorld transformer).
    """
    if getattr(pipe, "unet", None) is None:
        raise ValueError(f"{type(pipe).__name__} has no UNet; the LoRA fine-tunes train the ShapesWorld UNet model (\"shapes\")")
    from peft import LoraConfig

    torch.manual_seed(seed)
    pipe.unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=LORA_TARGETS, init_lora_weights="gaussian"))
    table = pipe.text_encoder.get_input_embeddings().weight
    pipe.text_encoder.requires_grad_(False)
    groups = [{"params": [p for name, p in pipe.unet.named_parameters() if "lora_" in name]}]
    if token_id is not None:
        table.requires_grad_(True)
        keep = torch.zeros(len(table), 1)
        keep[token_id] = 1
        table.register_hook(lambda grad: grad * keep.to(grad))  # only the new token's row learns
        groups.append({"params": [table], "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, lr=learning_rate)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    losses, tic = [], time.perf_counter()
    pipe.unet.train()
    for _ in tqdm(range(steps), desc=desc):
        images, captions = batches(rng)
        text = pipe.text_encoder(pipe.tokenize(captions))[0]
        noisy, noise, timesteps = noised_batch(pipe.scheduler, images, generator)
        loss = weighted_error(pipe.unet(noisy, timesteps, encoder_hidden_states=text).sample, noise, pipe.scheduler, timesteps, min_snr_gamma)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    pipe.unet.eval()
    table.requires_grad_(False)
    return {"steps": steps, "seconds": round(time.perf_counter() - tic, 1), "loss_first_10": float(np.mean(losses[:10])),
            "loss_last_10": float(np.mean(losses[-10:]))}


def lora_weights(pipe) -> dict[str, torch.Tensor]:
    """The UNet's LoRA weights as `pipelines.load_lora` reads them ("unet."-prefixed peft keys)."""
    from peft import get_peft_model_state_dict

    return {f"unet.{key}": value.contiguous() for key, value in get_peft_model_state_dict(pipe.unet).items()}


def teach_to_folder(pipeline: str | Path, out: str | Path, cfg: LoraWordConfig = LoraWordConfig()) -> Path:
    """Teach the word to the pipeline (a folder or "shapes") and write, atomically, OUT/lora.safetensors
    (load with `pipelines.load_lora`), OUT/word.safetensors (load with `read_embeddings`) and OUT/teach.json."""
    from workbench.pipelines.loading import load_pipeline

    pipe = load_pipeline(pipeline)
    summary = teach_word(pipe, cfg)
    lora = lora_weights(pipe)
    token_id = pipe.tokenizer.convert_tokens_to_ids(cfg.token)
    word = pipe.text_encoder.get_input_embeddings().weight[token_id].detach().clone()
    with atomic_path(out) as tmp:
        tmp.mkdir()
        save_file(lora, str(tmp / "lora.safetensors"))
        save_file({cfg.token: word}, str(tmp / "word.safetensors"))
        (tmp / "teach.json").write_text(json.dumps(summary, indent=1))
    return Path(out)
