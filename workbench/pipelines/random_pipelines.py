"""Text-to-image pipelines with random weights, built from config (no downloads).

They have the real architectures (SD 1.x, SD 2.x and SDXL UNets; PixArt's transformer with a
T5 text encoder) at small widths, so code that must work on a user's checkpoint can be tested
offline. CLIP tokenizers come in two kinds: "char" knows only the 256 byte-level characters
(each also with `</w>`) and has no merges, so words tokenise character by character (the
hardest case for word <-> token alignment); "bpe" is a real byte-level BPE with merges learned
on a small corpus and CLIP's `</w>` word ends, as users have. PixArt's T5 tokenizer is a
SentencePiece-style unigram model learned on the same corpus (`▁` marks a word's start).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

Family = Literal["sd15", "sd2", "sdxl", "pixart", "sd3", "flux", "sana"]
FAMILIES: tuple[str, ...] = ("sd15", "sd2", "sdxl", "pixart", "sd3", "flux", "sana")
TokenizerKind = Literal["char", "bpe"]

# What the BPE tokenizer's merges are learned from: words of typical prompts, punctuation too.
PROMPT_CORPUS = (
    "a photo of a red cat sitting on a sofa, high quality",
    "a dog and a cat playing in the garden, oil painting",
    "an astronaut riding a horse on the moon, digital art",
    "a toy car on a wooden table next to a blue cup",
    "portrait of a woman with a hat in the style of van gogh",
    "a small house by the river at sunset, watercolor",
)
SPECIAL_TOKENS = ["<|startoftext|>", "<|endoftext|>"]


def byte_level_characters() -> list[str]:
    """The 256 printable stand-ins that byte-level BPE uses for the bytes 0..255."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def _write_clip_tokenizer(folder: str | Path, merges: list[tuple[str, str]], max_length: int) -> CLIPTokenizer:
    """vocab.json (bytes, bytes + `</w>`, each merge's result, the specials) and merges.txt."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = byte_level_characters()
    tokens = chars + [c + "</w>" for c in chars]
    tokens += list(dict.fromkeys(a + b for a, b in merges if a + b not in set(tokens)))
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens + SPECIAL_TOKENS)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length)


def write_char_tokenizer(folder: str | Path, max_length: int = 77) -> CLIPTokenizer:
    """A CLIPTokenizer over single characters, written to `folder` (vocab.json, merges.txt)."""
    return _write_clip_tokenizer(folder, [], max_length)


def write_bpe_tokenizer(folder: str | Path, max_length: int = 77, corpus: tuple[str, ...] = PROMPT_CORPUS) -> CLIPTokenizer:
    """A byte-level BPE CLIPTokenizer with merges learned on `corpus` (CLIP's `</w>` word ends),
    written to `folder` as vocab.json + merges.txt: whole words for the corpus' words, pieces
    for others."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    learner = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    learner.normalizer = normalizers.Lowercase()
    learner.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=2000, initial_alphabet=byte_level_characters(), end_of_word_suffix="</w>", show_progress=False
    )
    learner.train_from_iterator([line.lower() for line in corpus], trainer)
    merges = [tuple(pair) for pair in json.loads(learner.to_str())["model"]["merges"]]
    return _write_clip_tokenizer(folder, merges, max_length)


TOKENIZER_WRITERS = {"char": write_char_tokenizer, "bpe": write_bpe_tokenizer}


def _text_encoder(tokenizer: CLIPTokenizer, width: int, act: str, projection: bool = False):
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        hidden_act=act,
        projection_dim=width,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


def _vae(width: int, **options) -> AutoencoderKL:
    return AutoencoderKL(
        **options,
        block_out_channels=(width,) * 4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=min(32, width),
    )


def build_random_pipeline(
    family: Family, folder: str | Path, width: int = 32, layers_per_block: int = 1, seed: int = 0,
    tokenizer: TokenizerKind = "char", sample_size: int | None = None,
) -> DiffusionPipeline:
    """A random-weight pipeline of `family`'s architecture; tokenizer files go to `folder`.

    Args:
        family: "sd15" (SD 1.x blocks), "sd2" (linear projections, v-prediction), "sdxl"
            (two text encoders, several transformer blocks per attention, no 8x8 attention) or
            "pixart" (a transformer denoiser with cross-attention, a T5 text encoder) or
            "sd3" (joint-attention transformer, CLIP-L, CLIP-G and T5 text encoders) or
            "flux" (double- and single-stream blocks with rotary positions, packed latents,
            T5 tokens and CLIP's pooled vector) or "sana" (linear self-attention and
            cross-attention blocks on a deep-compression autoencoder's latents, a Gemma 2
            encoder whose tokenizer starts with <bos>).
        folder: where the tokenizer files are written.
        width: channels of the first UNet block (SD 1.5 itself has 320).
        layers_per_block: resnet/attention layers per block (SD has 2).
        seed: torch seed for the weights.
        tokenizer: "char" (one token per character) or "bpe" (merges learned on prompts);
            PixArt always has its T5 unigram tokenizer.
        sample_size: the denoiser's default latent side (default: the family's, 64 for SD
            1.x/2.x and 32 here for SDXL and PixArt); the pipeline's default image side is 8
            times it.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if tokenizer not in TOKENIZER_WRITERS:
        raise ValueError(f"tokenizer must be one of {tuple(TOKENIZER_WRITERS)}, got {tokenizer!r}")
    torch.manual_seed(seed)
    if family == "pixart":
        return _pixart(Path(folder), width, sample_size)
    write_tokenizer = TOKENIZER_WRITERS[tokenizer]
    if family == "sd3":
        return _sd3(Path(folder), width, sample_size, write_tokenizer)
    if family == "flux":
        return _flux(Path(folder), width, write_tokenizer)
    if family == "sana":
        return _sana(Path(folder), width, sample_size)
    tokenizer = write_tokenizer(Path(folder) / "tokenizer_source")
    text_width = 32
    vae = _vae(32)
    if family == "sdxl":
        tokenizer_2 = write_tokenizer(Path(folder) / "tokenizer_2_source")
        unet = UNet2DConditionModel(
            sample_size=sample_size or 32, in_channels=4, out_channels=4,
            block_out_channels=(width, 2 * width, 4 * width), layers_per_block=layers_per_block,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 2), attention_head_dim=(2, 4, 8), use_linear_projection=True,
            cross_attention_dim=2 * text_width, addition_embed_type="text_time", addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + text_width, norm_num_groups=min(32, width),
        )
        return StableDiffusionXLPipeline(
            vae=vae, text_encoder=_text_encoder(tokenizer, text_width, "quick_gelu"),
            text_encoder_2=_text_encoder(tokenizer_2, text_width, "gelu", projection=True),
            tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet,
            scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False),
        )
    sd2 = family == "sd2"
    unet = UNet2DConditionModel(
        sample_size=sample_size or 64, in_channels=4, out_channels=4,
        block_out_channels=(width, 2 * width, 4 * width, 4 * width), layers_per_block=layers_per_block,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=text_width, attention_head_dim=(2, 4, 8, 8) if sd2 else 8,
        use_linear_projection=sd2, norm_num_groups=min(32, width),
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        prediction_type="v_prediction" if sd2 else "epsilon",
    )
    return StableDiffusionPipeline(
        vae=vae, text_encoder=_text_encoder(tokenizer, text_width, "gelu" if sd2 else "quick_gelu"),
        tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def _unigram_learner(corpus: tuple[str, ...], specials: list[str]):
    """A SentencePiece-style unigram tokenizer (`▁` word starts) learned on `corpus`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    learner = Tokenizer(models.Unigram())
    learner.pre_tokenizer = pre_tokenizers.Metaspace()
    learner.decoder = decoders.Metaspace()
    letters = "abcdefghijklmnopqrstuvwxyz"
    learner.train_from_iterator(list(corpus) * 4, trainers.UnigramTrainer(
        vocab_size=200, special_tokens=specials, unk_token="<unk>", initial_alphabet=list(letters + ",.!?-<>':")))
    return learner


def write_unigram_tokenizer(folder: str | Path, max_length: int = 32, corpus: tuple[str, ...] = PROMPT_CORPUS):
    """A T5 tokenizer (SentencePiece-style unigram, `▁` word starts, `</s>` at the end) learned
    on `corpus`, written to `folder`; words it has not seen split into pieces."""
    from tokenizers.processors import TemplateProcessing
    from transformers import T5TokenizerFast

    learner = _unigram_learner(corpus, ["<pad>", "</s>", "<unk>"])
    learner.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", learner.token_to_id("</s>"))])
    tokenizer = T5TokenizerFast(tokenizer_object=learner, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                extra_ids=0, model_max_length=max_length)
    tokenizer.save_pretrained(folder)
    return tokenizer


def _pixart(folder: Path, width: int, sample_size: int | None) -> DiffusionPipeline:
    """PixArt-alpha's architecture: a transformer of blocks with self- and cross-attention over
    2x2 latent patches, conditioned on a T5 encoder."""
    from diffusers import DPMSolverMultistepScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    tokenizer = write_unigram_tokenizer(folder / "tokenizer_source")
    text_width = 32
    transformer = PixArtTransformer2DModel(
        num_attention_heads=2, attention_head_dim=width // 2, in_channels=4, out_channels=8, num_layers=2,
        cross_attention_dim=width, sample_size=sample_size or 32, patch_size=2, caption_channels=text_width, norm_num_groups=min(32, width),
    )
    # eval(): a freshly built T5 is in training mode, and its dropout would make every call differ
    encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=text_width, d_kv=8, d_ff=64, num_layers=2, num_heads=4)).eval()
    return PixArtAlphaPipeline(tokenizer=tokenizer, text_encoder=encoder, vae=_vae(32), transformer=transformer.eval(),
                               scheduler=DPMSolverMultistepScheduler())


def _sd3(folder: Path, width: int, sample_size: int | None, write_tokenizer) -> DiffusionPipeline:
    """SD3.5's architecture: joint-attention (MMDiT) blocks over 2x2 latent patches with
    per-head query/key normalisation, the last block's text stream ending early, one dual block
    with an extra image self-attention, and three text encoders (CLIP-L, CLIP-G, T5)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import T5Config, T5EncoderModel

    text_width = 32
    tokenizer, tokenizer_2 = write_tokenizer(folder / "tokenizer_source"), write_tokenizer(folder / "tokenizer_2_source")
    tokenizer_3 = write_unigram_tokenizer(folder / "tokenizer_3_source")
    transformer = SD3Transformer2DModel(
        sample_size=sample_size or 32, patch_size=2, in_channels=4, out_channels=4, num_layers=2, attention_head_dim=width // 2,
        num_attention_heads=2, joint_attention_dim=2 * text_width, caption_projection_dim=width, pooled_projection_dim=2 * text_width,
        dual_attention_layers=(0,), qk_norm="rms_norm",  # SD3.5's: queries and keys normalised per head
    )
    encoder_3 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_3), d_model=2 * text_width, d_kv=8, d_ff=64, num_layers=2, num_heads=4)).eval()
    return StableDiffusion3Pipeline(
        transformer=transformer.eval(), scheduler=FlowMatchEulerDiscreteScheduler(), vae=_vae(32, shift_factor=0.0),
        text_encoder=_text_encoder(tokenizer, text_width, "quick_gelu", projection=True), tokenizer=tokenizer,
        text_encoder_2=_text_encoder(tokenizer_2, text_width, "gelu", projection=True), tokenizer_2=tokenizer_2,
        text_encoder_3=encoder_3, tokenizer_3=tokenizer_3,
    )


def _flux(folder: Path, width: int, write_tokenizer) -> DiffusionPipeline:
    """Flux.1-dev's architecture: double-stream (joint-attention) blocks, then single-stream
    blocks over one [text; image] sequence, rotary positions over text and image tokens,
    2x2-packed latents, a guidance embedding, T5 tokens and CLIP's pooled vector."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    text_width = 32
    tokenizer, tokenizer_2 = write_tokenizer(folder / "tokenizer_source"), write_unigram_tokenizer(folder / "tokenizer_2_source")
    head = width // 2
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=head, num_attention_heads=2,
        joint_attention_dim=text_width, pooled_projection_dim=text_width, guidance_embeds=True,
        axes_dims_rope=(head - 2 * (head * 3 // 8), head * 3 // 8, head * 3 // 8),
    )
    encoder_2 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=text_width, d_kv=8, d_ff=64, num_layers=2, num_heads=4)).eval()
    return FluxPipeline(
        transformer=transformer.eval(), scheduler=FlowMatchEulerDiscreteScheduler(), vae=_vae(32, shift_factor=0.0),
        text_encoder=_text_encoder(tokenizer, text_width, "quick_gelu"), tokenizer=tokenizer,
        text_encoder_2=encoder_2, tokenizer_2=tokenizer_2,
    )


def write_gemma_like_tokenizer(folder: str | Path, max_length: int = 300, corpus: tuple[str, ...] = PROMPT_CORPUS):
    """A Gemma-like tokenizer (unigram pieces, `<bos>` first, no end token) written to `folder`."""
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    learner = _unigram_learner(corpus, ["<pad>", "<eos>", "<bos>", "<unk>"])
    learner.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", learner.token_to_id("<bos>"))])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=learner, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                        unk_token="<unk>", model_max_length=max_length)
    tokenizer.save_pretrained(folder)
    return tokenizer


def _sana(folder: Path, width: int, sample_size: int | None) -> DiffusionPipeline:
    """Sana's architecture: blocks of linear self-attention and cross-attention over the
    latents of a deep-compression autoencoder, a Gemma 2 text encoder (prompts prefixed with
    an instruction, the keys cut to the first token and the prompt's tail)."""
    from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    text_width = 32
    tokenizer = write_gemma_like_tokenizer(folder / "tokenizer_source")
    transformer = SanaTransformer2DModel(
        patch_size=1, in_channels=4, out_channels=4, num_layers=2, num_attention_heads=2, attention_head_dim=width // 2,
        num_cross_attention_heads=2, cross_attention_head_dim=width // 2, cross_attention_dim=width, caption_channels=text_width,
        sample_size=sample_size or 32,
    )
    vae = AutoencoderDC(
        in_channels=3, latent_channels=4, attention_head_dim=2, encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"), encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
        encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)), encoder_layers_per_block=(1, 1),
        decoder_layers_per_block=(1, 1), downsample_block_type="conv", upsample_block_type="interpolate",
        decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.41407,
    )
    encoder = Gemma2Model(Gemma2Config(
        head_dim=16, hidden_size=text_width, intermediate_size=64, num_attention_heads=2, num_hidden_layers=1, num_key_value_heads=2,
        vocab_size=len(tokenizer), attn_implementation="eager", pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )).eval()
    return SanaPipeline(tokenizer=tokenizer, text_encoder=encoder, vae=vae.eval(), transformer=transformer.eval(),
                        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))


def save_random_pipeline(family: Family, folder: str | Path, **kwargs) -> Path:
    """Build and `save_pretrained` a random pipeline into `folder`/pipeline; returns that path."""
    folder = Path(folder)
    pipe = build_random_pipeline(family, folder, **kwargs)
    target = folder / "pipeline"
    pipe.save_pretrained(target)
    return target
