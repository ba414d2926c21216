"""What concept analyses read from any text-to-image pipeline, the way it reads them itself.

- `encode_prompts`: the pipeline's own `encode_prompt` (its tokenizer(s), text encoder(s),
  learned words; SDXL's two encoders, its pooled embedding and size conditioning; SD3's and
  Flux's pooled embedding; PixArt's and Sana's attention mask);
- `to_latents` / `from_latents`: images to the denoiser's space through the pipeline's VAE
  (its mean, times the scaling factor), and back; the identity for pixel-space models;
- `predict`: one denoiser call, made as the pipeline makes it (UNet, SD3, Flux with its packed
  latents, PixArt, Sana); `noise_to` and `clean_estimate`: a noise level and the one-step
  clean estimate x0_hat, for DDPM-type schedulers (epsilon, v or sample prediction) and for
  flow matching (SD3, Flux, Sana: x_t = (1 - s) x0 + s noise, s = level / 1000).

Each kind of denoiser is one row of `DENOISERS`: how its pipeline's `encode_prompt` output is
read, and how it is called.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch


@dataclass
class Conditioning:
    """Prompt conditioning for the denoiser: states (n, tokens, width) and the extra inputs
    some denoisers take, each with one row per prompt (SDXL: text_embeds (n, width_2) and
    time_ids (n, 6); SD3 and Flux: pooled_projections (n, width); Flux: guidance (n,);
    PixArt and Sana: encoder_attention_mask (n, tokens))."""

    states: torch.Tensor
    added: dict[str, torch.Tensor] = field(default_factory=dict)

    def rows(self, index: torch.Tensor | slice) -> "Conditioning":
        return Conditioning(self.states[index], {k: v[index] for k, v in self.added.items()})


def _device(pipe) -> torch.device:
    return getattr(pipe, "device", torch.device("cpu"))


def denoiser_name(pipe) -> str:
    """The pipeline's denoiser component: "unet" or "transformer".

    Raises:
        ValueError: a pipeline with neither.
    """
    for name in ("unet", "transformer"):
        if isinstance(getattr(pipe, name, None), torch.nn.Module):
            return name
    raise ValueError(f"{type(pipe).__name__} has neither a unet nor a transformer; concept analyses need a denoiser")


def denoiser(pipe) -> torch.nn.Module:
    """The pipeline's denoiser module (its UNet or transformer)."""
    return getattr(pipe, denoiser_name(pipe))


def default_layers(pipe) -> list[str]:
    """Three denoiser layers, early, middle and late, for analyses not told which to read: a
    UNet's first down block, mid block and second up block; a transformer's first, middle and
    last block (Flux: its double- then single-stream blocks, in the order they run)."""
    name = denoiser_name(pipe)
    if name == "unet":
        return ["unet.down_blocks.0", "unet.mid_block", "unet.up_blocks.1"]
    model = denoiser(pipe)
    blocks = [f"transformer.{group}.{i}" for group in ("transformer_blocks", "single_transformer_blocks")
              for i in range(len(getattr(model, group, ())))]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no transformer_blocks; name the layers to read")
    return list(dict.fromkeys(blocks[i] for i in (0, len(blocks) // 2, len(blocks) - 1)))


def _call_default(pipe, name: str):
    """The default of `pipe.__call__`'s argument `name` (what a plain generation uses), or None."""
    parameter = inspect.signature(type(pipe).__call__).parameters.get(name)
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def _read_unet(pipe, out, n: int, image_size) -> Conditioning:
    if isinstance(out, torch.Tensor):
        return Conditioning(out)
    states, pooled = out[0], (out[2] if len(out) >= 4 else None)
    if pipe.unet.config.get("addition_embed_type") != "text_time":
        return Conditioning(states)
    height, width = image_size or default_image_size(pipe)
    # SDXL's micro-conditioning: original size, crop top-left, target size
    time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=states.dtype, device=states.device)
    return Conditioning(states, {"text_embeds": pooled, "time_ids": time_ids.repeat(n, 1)})


def _read_sd3(pipe, out, n: int, image_size) -> Conditioning:
    return Conditioning(out[0], {"pooled_projections": out[2]})


def _read_flux(pipe, out, n: int, image_size) -> Conditioning:
    added = {"pooled_projections": out[1]}
    if pipe.transformer.config.get("guidance_embeds"):
        scale = _call_default(pipe, "guidance_scale") or 3.5
        added["guidance"] = torch.full((n,), float(scale), device=out[0].device, dtype=torch.float32)
    return Conditioning(out[0], added)


def _read_masked(pipe, out, n: int, image_size) -> Conditioning:
    return Conditioning(out[0], {"encoder_attention_mask": out[1]})


def _learned_sigma_dropped(prediction: torch.Tensor, latent_channels: int) -> torch.Tensor:
    """PixArt and Sana models that also predict their variance return twice the channels; the
    first half is the prediction, as their pipelines take it."""
    return prediction.chunk(2, dim=1)[0] if prediction.shape[1] == 2 * latent_channels else prediction


def _call_unet(pipe, noisy, timesteps, conditioning: Conditioning) -> torch.Tensor:
    added = conditioning.added or None
    return pipe.unet(noisy, timesteps, encoder_hidden_states=conditioning.states, added_cond_kwargs=added).sample


def _call_sd3(pipe, noisy, timesteps, conditioning: Conditioning) -> torch.Tensor:
    return pipe.transformer(hidden_states=noisy, timestep=timesteps, encoder_hidden_states=conditioning.states, **conditioning.added).sample


def _call_flux(pipe, noisy, timesteps, conditioning: Conditioning) -> torch.Tensor:
    n, channels, height, width = noisy.shape
    packed = type(pipe)._pack_latents(noisy, n, channels, height, width)
    image_ids = type(pipe)._prepare_latent_image_ids(n, height // 2, width // 2, noisy.device, noisy.dtype)
    text_ids = torch.zeros(conditioning.states.shape[1], 3, device=noisy.device, dtype=noisy.dtype)
    out = pipe.transformer(
        hidden_states=packed, timestep=timesteps / 1000, encoder_hidden_states=conditioning.states,
        txt_ids=text_ids, img_ids=image_ids, **conditioning.added,
    ).sample
    factor = pipe.vae_scale_factor
    return type(pipe)._unpack_latents(out, height * factor, width * factor, factor)


def _call_pixart(pipe, noisy, timesteps, conditioning: Conditioning) -> torch.Tensor:
    out = pipe.transformer(
        noisy, encoder_hidden_states=conditioning.states, timestep=timesteps,
        added_cond_kwargs={"resolution": None, "aspect_ratio": None}, **conditioning.added,
    ).sample
    return _learned_sigma_dropped(out, noisy.shape[1])


def _call_sana(pipe, noisy, timesteps, conditioning: Conditioning) -> torch.Tensor:
    scale = pipe.transformer.config.get("timestep_scale") or 1.0
    out = pipe.transformer(noisy, encoder_hidden_states=conditioning.states, timestep=timesteps * scale, **conditioning.added).sample
    return _learned_sigma_dropped(out, noisy.shape[1])


@dataclass(frozen=True)
class DenoiserRow:
    """How concept analyses read one kind of denoiser's conditioning and call it."""

    read: Callable[..., Conditioning]  # (pipe, encode_prompt's output, n prompts, image size) -> Conditioning
    call: Callable[..., torch.Tensor]  # (pipe, noisy (n, c, y, x), timesteps (n,), Conditioning) -> prediction
    # channels of the unpacked latent per input channel of the model (Flux packs 2x2 patches)
    packing: int = 1


DENOISERS: dict[str, DenoiserRow] = {
    "UNet2DConditionModel": DenoiserRow(_read_unet, _call_unet),
    "SD3Transformer2DModel": DenoiserRow(_read_sd3, _call_sd3),
    "FluxTransformer2DModel": DenoiserRow(_read_flux, _call_flux, packing=4),
    "PixArtTransformer2DModel": DenoiserRow(_read_masked, _call_pixart),
    "SanaTransformer2DModel": DenoiserRow(_read_masked, _call_sana),
}


def denoiser_row(pipe) -> DenoiserRow:
    """The row of the pipeline's denoiser (its class or the diffusers class it derives from).

    Raises:
        ValueError: a denoiser without a row (names it and the supported ones).
    """
    module = denoiser(pipe)
    for cls in type(module).__mro__:
        if cls.__name__ in DENOISERS:
            return DENOISERS[cls.__name__]
    raise ValueError(
        f"concept analyses cannot call a {type(module).__name__} yet; supported denoisers: {', '.join(DENOISERS)}"
    )


def encode_prompts(pipe, prompts: Sequence[str], image_size: tuple[int, int] | None = None) -> Conditioning:
    """The pipeline's conditioning for `prompts`, without classifier-free guidance, as a plain
    generation encodes them (Sana's default instruction included).

    Args:
        image_size: (height, width) in pixels, for SDXL's size conditioning (default: the
            pipeline's default resolution).

    Raises:
        ValueError: a pipeline without `encode_prompt` or with a denoiser that has no row, or no prompts.
    """
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts to encode")
    encode = getattr(pipe, "encode_prompt", None)
    if encode is None:
        raise ValueError(f"{type(pipe).__name__} has no encode_prompt; concept analyses need a pipeline that encodes prompts")
    row = denoiser_row(pipe)
    wanted = {
        "device": _device(pipe), "num_images_per_prompt": 1, "do_classifier_free_guidance": False,
        "prompt_2": None, "prompt_3": None, "clean_caption": False,
        "complex_human_instruction": _call_default(pipe, "complex_human_instruction"),
    }
    parameters = inspect.signature(encode).parameters
    out = encode(prompts, **{k: v for k, v in wanted.items() if k in parameters})
    return row.read(pipe, out, len(prompts), image_size)


def default_image_size(pipe) -> tuple[int, int]:
    """The pipeline's default (height, width) in pixels."""
    size = denoiser(pipe).config.get("sample_size") or getattr(pipe, "default_sample_size", None)
    if size is None:
        raise ValueError(f"{type(pipe).__name__}: its denoiser states no sample_size; give the image size")
    factor = getattr(pipe, "vae_scale_factor", 1) if _vae(pipe) is not None else 1
    return (size * factor, size * factor) if isinstance(size, int) else (size[0] * factor, size[1] * factor)


def _vae(pipe):
    return getattr(pipe, "vae", None)


def _scaling(vae) -> tuple[float, float]:
    return vae.config.scaling_factor, vae.config.get("shift_factor") or 0.0


def to_latents(pipe, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Images (n, 3, y, x) in [-1, 1] -> what the denoiser denoises: the VAE's latent mean,
    scaled as the pipeline scales it, (n, c, y / f, x / f); pixel-space models: the images."""
    vae = _vae(pipe)
    if vae is None:
        return images.to(_device(pipe))
    scale, shift = _scaling(vae)
    pieces = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(_device(pipe), vae.dtype)
        encoded = vae.encode(batch)
        # AutoencoderKL gives a distribution (its mean is taken); Sana's AutoencoderDC a latent
        mean = encoded.latent_dist.mean if hasattr(encoded, "latent_dist") else encoded.latent
        pieces.append((mean - shift) * scale)
    return torch.cat(pieces)


def from_latents(pipe, latents: torch.Tensor) -> torch.Tensor:
    """The inverse of `to_latents`: (n, 3, y, x) in about [-1, 1], differentiable."""
    vae = _vae(pipe)
    if vae is None:
        return latents
    scale, shift = _scaling(vae)
    return vae.decode(latents / scale + shift).sample


def latent_shape(pipe, n: int, image_size: tuple[int, int] | None = None) -> tuple[int, ...]:
    """(n, channels, y, x) of the denoiser's input for images of `image_size` pixels."""
    height, width = image_size or default_image_size(pipe)
    factor = getattr(pipe, "vae_scale_factor", 1) if _vae(pipe) is not None else 1
    channels = denoiser(pipe).config.in_channels // denoiser_row(pipe).packing
    return (n, channels, height // factor, width // factor)


def predict(pipe, noisy: torch.Tensor, timesteps: torch.Tensor, conditioning: Conditioning) -> torch.Tensor:
    """The denoiser's prediction (n, c, y, x) for latents `noisy` (n, c, y, x) at `timesteps`
    (n,) on the scheduler's scale (epsilon, v, sample or flow velocity, as the scheduler expects)."""
    return denoiser_row(pipe).call(pipe, noisy, timesteps, conditioning)


def is_flow_matching(scheduler) -> bool:
    """Whether the scheduler denoises along straight paths x_t = (1 - s) x0 + s noise (SD3, Flux,
    Sana) rather than DDPM's sqrt(a_t) x0 + sqrt(1 - a_t) noise."""
    return "FlowMatch" in type(scheduler).__name__ or scheduler.config.get("prediction_type") == "flow_prediction"


def _flow_sigma(scheduler, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    total = scheduler.config.get("num_train_timesteps", 1000)
    return (timesteps.to(like.device, like.dtype) / total).view(-1, *([1] * (like.ndim - 1)))


def noise_to(scheduler, clean: torch.Tensor, noise: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`clean` (n, c, y, x) noised to `level` (0 to the scheduler's training timesteps, 1000):
    (noisy, timesteps (n,)) with the timesteps the denoiser takes for it. DDPM-type schedulers
    (DDIM, Euler, DPM-Solver...): sqrt(a_t) x0 + sqrt(1 - a_t) noise. Flow matching: the
    noise share s = level / 1000, the timestep s * 1000 as the pipelines pass it."""
    if is_flow_matching(scheduler):
        t = torch.full((len(clean),), float(level), device=clean.device)
        sigma = _flow_sigma(scheduler, t, clean)
        return (1 - sigma) * clean + sigma * noise, t
    # from the training schedule itself: scheduler.add_noise of Euler or DPM-Solver schedulers
    # reads the sigmas of the last inference schedule, which need not hold this level
    t = torch.full((len(clean),), level, dtype=torch.long, device=clean.device)
    a = scheduler.alphas_cumprod.to(clean.device)[t].view(-1, *([1] * (clean.ndim - 1)))
    return (a.sqrt() * clean.float() + (1 - a).sqrt() * noise.float()).to(clean.dtype), t


def clean_estimate(scheduler, noisy: torch.Tensor, prediction: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The one-step clean estimate x0_hat, for the scheduler's prediction type:
    epsilon: (x_t - sqrt(1 - a_t) eps) / sqrt(a_t); v: sqrt(a_t) x_t - sqrt(1 - a_t) v; sample:
    itself; flow matching (velocity v = noise - x0): x_t - s v.

    Raises:
        ValueError: another prediction type.
    """
    if is_flow_matching(scheduler):
        return noisy - _flow_sigma(scheduler, timesteps, noisy) * prediction
    kind = scheduler.config.get("prediction_type", "epsilon")
    alpha = scheduler.alphas_cumprod.to(noisy.device, noisy.dtype)[timesteps].view(-1, *([1] * (noisy.ndim - 1)))
    if kind == "epsilon":
        return (noisy - (1 - alpha).sqrt() * prediction) / alpha.sqrt()
    if kind == "v_prediction":
        return alpha.sqrt() * noisy - (1 - alpha).sqrt() * prediction
    if kind == "sample":
        return prediction
    raise ValueError(f"the scheduler's prediction_type {kind!r} is not one of epsilon, v_prediction, sample")
