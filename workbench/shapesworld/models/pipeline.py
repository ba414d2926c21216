"""The ShapesWorld text-to-image pipelines: pixel-space diffusion from real diffusers parts.

A denoiser works on 32x32 RGB images directly (no VAE: the images are small), conditioned on a
`CLIPTextModel` reading a word-level tokenizer: `ShapesPipeline` with a `UNet2DConditionModel`
(cross-attention, as Stable Diffusion 1.x/2.x), `ShapesTransformerPipeline` with an
`SD3Transformer2DModel` (joint attention over image patches and text tokens, as SD3's MMDiT;
the text encoder's pooled output feeds its time embedding). Classifier-free guidance batches
[unconditional, conditional] as Stable Diffusion does, so the capture code treats them alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Sequence

import numpy as np
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, SD3Transformer2DModel, UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin, TextualInversionLoaderMixin
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerBase

from ..vocabulary import vocabulary
from .tokenizer import build_word_tokenizer

# Classifier-free guidance for the embedded model (benchmarks/world_quality.py, --guidance):
# guidance at the noisiest steps pulls this small model's objects apart (wrong shapes, extra
# objects), so it is kept low; the analyses and probes default to it too.
DEFAULT_GUIDANCE_SCALE = 1.5


@dataclass(frozen=True)
class ShapesModelConfig:
    """Sizes of the embedded model; the defaults are what `workbench world train` uses."""

    image_size: int = 32
    # 4.1 M parameters; at (32, 64, 64), 1.7 M, two-object shape stayed near 0.63 however
    # it was trained, and 0.81 here (README, Measurements).
    block_out_channels: tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1
    # Attention at 16x16 and 8x8 only: at 32x32, self-attention over 1,024 pixels made a
    # training step ~10x slower on 2 CPU cores (measured: 20 s vs 2.9 s at batch 64).
    down_block_types: tuple[str, ...] = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    attention_head_dim: int = 16
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 2
    max_length: int = 20
    train_timesteps: int = 1000
    # "unet", or "transformer": an SD3-style MMDiT on patch_size x patch_size pixel patches
    denoiser: Literal["unet", "transformer"] = "unet"
    patch_size: int = 2
    transformer_layers: int = 6
    transformer_heads: int = 4
    transformer_head_dim: int = 32

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ShapesModelConfig":
        """The inverse of `to_dict` (JSON turns the tuples into lists)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def build_components(config: ShapesModelConfig, seed: int = 0) -> dict:
    """Fresh, randomly initialised components of a ShapesPipeline (seeded)."""
    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer(vocabulary(), config.max_length)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.text_width,
            intermediate_size=2 * config.text_width,
            num_hidden_layers=config.text_layers,
            num_attention_heads=config.text_heads,
            max_position_embeddings=config.max_length,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    scheduler = DDIMScheduler(
        num_train_timesteps=config.train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="epsilon",
        clip_sample=True,
        set_alpha_to_one=True,
    )
    parts = {"text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}
    if config.denoiser == "transformer":
        width = config.transformer_heads * config.transformer_head_dim
        parts["transformer"] = SD3Transformer2DModel(
            sample_size=config.image_size,
            patch_size=config.patch_size,
            in_channels=3,
            out_channels=3,
            num_layers=config.transformer_layers,
            attention_head_dim=config.transformer_head_dim,
            num_attention_heads=config.transformer_heads,
            joint_attention_dim=config.text_width,
            caption_projection_dim=width,
            pooled_projection_dim=config.text_width,
            pos_embed_max_size=config.image_size // config.patch_size,
            qk_norm="rms_norm",
        )
        return parts
    parts["unet"] = UNet2DConditionModel(
        sample_size=config.image_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        down_block_types=config.down_block_types,
        up_block_types=config.up_block_types,
        mid_block_type="UNetMidBlock2DCrossAttn",
        cross_attention_dim=config.text_width,
        attention_head_dim=config.attention_head_dim,
        norm_num_groups=8,
    )
    return parts


def predict_noise(denoiser: nn.Module, sample: torch.Tensor, timesteps: torch.Tensor, text) -> torch.Tensor:
    """The denoiser's noise estimate (batch, 3, y, x) for `sample` at `timesteps` (batch,) given
    the text encoder's output `text` (its hidden states, and the pooled state a transformer's
    time embedding also takes)."""
    if isinstance(denoiser, SD3Transformer2DModel):
        return denoiser(
            hidden_states=sample, timestep=timesteps, encoder_hidden_states=text[0], pooled_projections=text[1]
        ).sample
    return denoiser(sample, timesteps, encoder_hidden_states=text[0]).sample


class ShapesPipeline(DiffusionPipeline, TextualInversionLoaderMixin, StableDiffusionLoraLoaderMixin):
    """Text-to-image for ShapesWorld captions.

    Example:
        >>> pipe = workbench.load_pipeline("shapes")
        >>> g = torch.Generator().manual_seed(0)
        >>> images = pipe(["a large red circle on a gray background"], generator=g).images
    """

    model_cpu_offload_seq = "text_encoder->unet"

    def __init__(
        self,
        unet: UNet2DConditionModel,
        text_encoder: CLIPTextModel,
        tokenizer: PreTrainedTokenizerBase,
        scheduler: DDIMScheduler,
    ):
        super().__init__()
        self.register_modules(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)
        self._guidance_scale = 1.0

    @property
    def do_classifier_free_guidance(self) -> bool:
        """Whether the running call batches [unconditional, conditional] (as diffusers' SD does)."""
        return self._guidance_scale > 1.0

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        """Token ids (batch, max_length), padded and truncated like Stable Diffusion's.

        Multi-vector learned words ("S*" -> "S* S*_1 S*_2") are expanded first, as diffusers does.
        """
        return self.tokenizer(
            self.maybe_convert_prompt(list(prompts), self.tokenizer),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids

    @property
    def denoiser(self) -> nn.Module:
        return self.unet

    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        """Text-encoder hidden states (batch, max_length, width) on the pipeline's device."""
        return self.encode_text(prompts)[0]

    def encode_text(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Text-encoder hidden states (batch, max_length, width) and pooled states (batch, width)."""
        output = self.text_encoder(self.tokenize(prompts).to(self.device))
        return output[0].to(self.denoiser.dtype), output[1].to(self.denoiser.dtype)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str],
        num_inference_steps: int = 25,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        generator: torch.Generator | None = None,
        output_type: Literal["pil", "np", "pt"] = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """Generate one image per prompt.

        Args:
            prompt: a caption or a batch of captions.
            num_inference_steps: DDIM steps.
            guidance_scale: classifier-free guidance weight; <= 1 disables guidance.
            generator: seeds the initial noise (on the CPU or the pipeline's device).
            output_type: "pil" (list of PIL images), "np" (float (b, y, x, 3) in [0, 1]) or "pt"
                (float (b, 3, y, x) in [0, 1]).

        Returns:
            ImagePipelineOutput with `.images`, or a 1-tuple when return_dict is False.

        Raises:
            ValueError: on an empty batch, a bad step count or an unknown output_type.
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise ValueError("prompt must be a caption or a non-empty list of captions")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        self._guidance_scale = guidance_scale
        guided = self.do_classifier_free_guidance
        # The prompt is encoded before the empty prompt, as in diffusers' pipelines.
        text = self.encode_text(prompts)
        if guided:
            text = tuple(torch.cat(pair) for pair in zip(self.encode_text([""] * len(prompts)), text))

        config = self.denoiser.config
        shape = (len(prompts), config.in_channels, config.sample_size, config.sample_size)
        sample = randn_tensor(shape, generator=generator, device=self.device, dtype=self.denoiser.dtype)
        sample = sample * self.scheduler.init_noise_sigma
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        for t in self.progress_bar(self.scheduler.timesteps):
            model_input = torch.cat([sample] * 2) if guided else sample
            model_input = self.scheduler.scale_model_input(model_input, t)
            timesteps = t.expand(len(model_input)).to(self.device)
            noise = predict_noise(self.denoiser, model_input, timesteps, text)
            if guided:
                uncond, cond = noise.chunk(2)
                noise = uncond + guidance_scale * (cond - uncond)
            sample = self.scheduler.step(noise, t, sample).prev_sample

        images = (sample.float() / 2 + 0.5).clamp(0, 1)
        if output_type == "np":
            images = images.permute(0, 2, 3, 1).cpu().numpy()
        elif output_type == "pil":
            array = (images.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
            images = [Image.fromarray(a) for a in array]
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)


class ShapesTransformerPipeline(ShapesPipeline):
    """ShapesPipeline with an SD3-style joint-attention transformer as its denoiser.

    Example:
        >>> pipe = workbench.load_pipeline("shapes-transformer")
    """

    model_cpu_offload_seq = "text_encoder->transformer"

    def __init__(
        self,
        transformer: SD3Transformer2DModel,
        text_encoder: CLIPTextModel,
        tokenizer: PreTrainedTokenizerBase,
        scheduler: DDIMScheduler,
    ):
        DiffusionPipeline.__init__(self)
        self.register_modules(transformer=transformer, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)
        self._guidance_scale = 1.0

    @property
    def denoiser(self) -> nn.Module:
        return self.transformer

    def encode_prompt(self, prompts: Sequence[str]) -> tuple[torch.Tensor, None, torch.Tensor, None]:
        """What StableDiffusion3Pipeline.encode_prompt returns, so that analyses read this
        pipeline as they read SD3: (hidden states (batch, max_length, width), None, pooled
        states (batch, width), None); the None are the negatives, which this pipeline encodes
        as the empty prompt at generation time."""
        states, pooled = self.encode_text(prompts)
        return states, None, pooled, None


def pipeline_from_components(parts: dict) -> ShapesPipeline:
    """The pipeline of `build_components`' parts (which denoiser decides the class)."""
    return ShapesTransformerPipeline(**parts) if "transformer" in parts else ShapesPipeline(**parts)
