"""`trace(pipe)`: capture attention (and later activations) during one pipeline call.

    with workbench.trace(pipe, layers="all") as tr:
        out = pipe(prompts, generator=g)
    maps = tr.attention_maps()
    maps.word("red", prompt=0)       # (y, x) heat map at image resolution

Hooks go only through diffusers' attention-processor extension point and module forward hooks;
the pipeline's own processors come back on exit, also after an exception.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Literal, Sequence

import psutil
import torch

from .activations import ActivationRecorder, Activations, Pool, register, resolve_module
from .architectures import ARCHITECTURES, AttentionLayer, attention_layers, denoiser_of, select_layers
from .concept_maps import ConceptStream, ConceptWordError, concept_tokens, encode_concepts
from .maps import AttentionMaps, PromptTokens
from .processor import capturing, spatial_shape
from .prompts import recorded_texts, recording_prompts
from .tokens import collapse_slots, expand_slots
from .store import AttentionStore, CaptureMemoryError

logger = logging.getLogger(__name__)

Guidance = Literal["cond", "uncond"]
LayerSelection = str | Sequence[str] | None


class Trace:
    """Capture attention during the pipeline calls inside the block: `with trace(pipe) as tr:`.

    Args:
        pipe: a diffusers pipeline whose denoiser is a row of ARCHITECTURES: a
            UNet2DConditionModel (SD 1.x, 2.x, SDXL), PixArt's transformer, or the joint
            attention of SD3 and Flux (image queries on the text keys, one softmax over all
            keys; Flux's single-stream blocks too, as "single.N").
        layers: cross-attention layers: "all", a short name or prefix ("down.1", "mid",
            "up.2.0"), a module path, or a list of these; None for none.
        self_layers: self-attention layers, selected the same way (default: none).
        heads: "mean" averages heads as they are captured; "keep" keeps them.
        steps: "all", or the step indices (0 = first denoising step) to capture.
        per_step: keep each step instead of the running mean (memory is checked first).
        guidance: with classifier-free guidance, capture the conditional ("cond") or the
            unconditional ("uncond") half of the batch.
        modules: modules whose outputs to record, named "component.path" from the pipeline
            (e.g. "unet.mid_block", "text_encoder.encoder.layers.1").
        pool: how module outputs are pooled over positions: "mean", "max" or "none".
        memory_fraction: the share of available memory per-step storage may take.
        concepts: words (in the prompt or not) whose concept maps in attention-output space
            to compute at the selected joint-attention layers (ConceptAttention; SD3 and
            Flux's double-stream blocks); the generation stays bit-identical.
        queries: on joint-attention and single-stream layers, read "image" queries on the
            words' keys (the heat maps, default) or the words' own "text" queries on the image
            keys (each word's attention over the image).

    After the block, ask it for `attention_maps()` (and `activations()`, `concept_maps()`).

    Raises:
        LayerSelectionError: a selector matching no layer (the valid names are listed).
        ValueError: a pipeline without a known cross-attention denoiser, or bad options.
        ConceptWordError: concepts on a denoiser without joint attention, or a concept word
            that cannot be encoded (named).
        CaptureMemoryError: per-step storage that would exceed available memory.
    """

    def __init__(
        self,
        pipe,
        layers: LayerSelection = "all",
        self_layers: LayerSelection = None,
        heads: Literal["mean", "keep"] = "mean",
        steps: Literal["all"] | range | Sequence[int] = "all",
        per_step: bool = False,
        guidance: Guidance = "cond",
        modules: Sequence[str] | None = None,
        pool: Pool = "mean",
        memory_fraction: float = 0.8,
        concepts: Sequence[str] | None = None,
        queries: Literal["image", "text"] = "image",
    ):
        if heads not in ("mean", "keep"):
            raise ValueError(f"heads must be 'mean' or 'keep', got {heads!r}")
        if guidance not in ("cond", "uncond"):
            raise ValueError(f"guidance must be 'cond' (conditional half) or 'uncond', got {guidance!r}")
        self.pipe = pipe
        self.denoiser = denoiser_of(pipe)
        self.architecture = ARCHITECTURES[type(self.denoiser).__name__]
        all_layers = attention_layers(self.denoiser)
        self.layers: list[AttentionLayer] = select_layers(all_layers, layers, "cross") + select_layers(
            all_layers, self_layers, "self"
        )
        if pool not in ("mean", "max", "none"):
            raise ValueError(f"pool must be 'mean', 'max' or 'none', got {pool!r}")
        self.modules = [modules] if isinstance(modules, str) else list(modules or [])
        for name in self.modules:
            resolve_module(pipe, name)  # fail before generating, naming what exists
        if not self.layers and not self.modules:
            raise ValueError("nothing to capture: layers, self_layers and modules select nothing")
        if queries not in ("image", "text"):
            raise ValueError(f"queries must be 'image' or 'text', got {queries!r}")
        self.queries = queries
        if queries == "text":
            separate = [layer.short for layer in self.layers if layer.kind == "cross" and layer.stream not in ("joint", "single")]
            if separate:
                raise ValueError(
                    f"queries='text' reads the words' queries on image keys, which only joint-attention and single-stream layers "
                    f"have; {', '.join(separate)} are cross-attention layers, whose text tokens have no queries"
                )
        self.concepts = [concepts] if isinstance(concepts, str) else list(concepts or [])
        self.concept_layers = self._concept_layers(all_layers) if self.concepts else []
        # encoded now (before the text encoder is hooked: not a prompt of the traced call), so bad words fail here
        self.concept_embeddings = self._encode_concepts() if self.concepts else None
        self.recorder = ActivationRecorder(pool, self._activation_rows)
        self.steps = steps
        self.guidance = guidance
        self.memory_fraction = memory_fraction
        self.store = AttentionStore(keep_heads=heads == "keep", per_step=per_step)
        self.concept_store = AttentionStore(keep_heads=False, per_step=per_step)
        self.stream: ConceptStream | None = None
        self.step = -1
        self.captured_steps: list[int] = []
        self.timesteps: list[float] = []
        self.latent_hw: tuple[int, int] | None = None
        self.text_length: int | None = None  # the denoiser's text tokens (a single-stream sequence's lead)
        self.encoded_ids: list[torch.Tensor] = []  # the text encoder's inputs, in call order
        self.recorders: dict = {}  # tokenizer name -> RecordingTokenizer, set by trace()
        self.estimated_bytes: int | None = None
        self._rows: slice | None = None
        self._last_level: float | None = None  # the noise level of the last denoiser call
        self._hooks: ExitStack | None = None  # open while the `with` block runs

    def _concept_layers(self, all_layers: list[AttentionLayer]) -> list[AttentionLayer]:
        joint = [layer for layer in all_layers if layer.stream == "joint"]
        if not joint:
            raise ConceptWordError(
                f"concept maps need joint-attention blocks (SD3, Flux), whose text stream concept tokens can pass through; "
                f"{type(self.denoiser).__name__} has none: read its raw cross-attention maps (attention_maps()) instead"
            )
        chosen = [layer for layer in self.layers if layer.stream == "joint"]
        if not chosen:
            raise ConceptWordError(
                f"concept maps are made at joint-attention layers, and the selected layers have none; select some of: "
                f"{', '.join(layer.short for layer in joint)}"
            )
        return chosen

    # --- hooks -------------------------------------------------------------------------
    def _on_text_encoder(self, module, args, kwargs) -> None:
        if self.step >= 0:
            raise RuntimeError("a trace covers one pipeline call; open a new `with trace(pipe)` for the next call")
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:  # diffusers encodes the prompt before the negative prompt
            self.encoded_ids.append(ids.detach().cpu())

    @property
    def prompt_ids(self) -> torch.Tensor | None:
        return self.encoded_ids[0] if self.encoded_ids else None

    def _on_denoiser(self, module, args, kwargs) -> None:
        sample = kwargs.get(self.architecture.latent, args[0] if args else None)
        timestep = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        level = float(timestep.flatten()[0]) if torch.is_tensor(timestep) else float(timestep)
        if level == self._last_level:
            # a second call at the same step: Flux's true CFG runs the negative prompt as its own
            # call after the prompt's; it is the unconditional half, which the trace leaves out
            self._rows = None
            if self.stream is not None:
                self.stream.start()  # with no rows: the concept stream stays off for this call
            return
        self._last_level = level
        self._check_memory_after_first_step()
        self.step += 1
        self.latent_hw = self.architecture.latent_grid(sample, kwargs)
        text = kwargs.get("encoder_hidden_states")
        self.text_length = text.shape[1] if torch.is_tensor(text) else None
        wanted = self.steps == "all" or self.step in self.steps
        self._rows = self._guidance_rows(sample.shape[0]) if wanted else None
        if self.stream is not None:
            self.stream.start()
        if wanted:
            self.captured_steps.append(self.step)
            self.timesteps.append(level)

    def _guidance_rows(self, batch: int) -> slice:
        # Pipelines keep their guidance scale after a call, so a direct denoiser call (e.g. for
        # activations) would look guided: it is only if the batch doubles the encoded prompts.
        flag = getattr(self.pipe, "do_classifier_free_guidance", None)
        if flag is None:  # pipelines without the property (PixArt) encode a negative prompt only when guiding
            flag = len(self.encoded_ids) > 1
        guided = bool(flag) and batch % 2 == 0
        if guided and self.prompt_ids is not None:
            guided = batch >= 2 * len(self.prompt_ids)
        if not guided:
            if self.guidance == "uncond":
                raise ValueError("guidance='uncond' asked for, but this call runs without batched classifier-free guidance "
                                 "(Flux's true CFG runs the negative prompt as a call of its own, which traces leave out)")
            return slice(0, batch)
        half = batch // 2
        return slice(half, batch) if self.guidance == "cond" else slice(0, half)

    def _activation_rows(self, name: str, batch: int) -> slice | None:
        """Denoiser modules follow the attention capture (steps, guidance half); modules of
        other components are recorded at every call, whole batch (text encoder: call 0 is the
        prompt, call 1 the negative prompt)."""
        if getattr(self.pipe, name.split(".")[0], None) is self.denoiser:
            return self._rows
        return slice(0, batch)

    def _sink(self, layer: AttentionLayer, probabilities: torch.Tensor) -> None:
        shape = spatial_shape(self.latent_hw, probabilities.shape[2])
        self.store.add(layer.path, probabilities, shape)

    def _concept_sink(self, layer: AttentionLayer, scores: torch.Tensor) -> None:
        self.concept_store.add(layer.path, scores, spatial_shape(self.latent_hw, scores.shape[2]))

    def _check_memory_after_first_step(self) -> None:
        """In per-step mode, size the whole store once one step's size is known."""
        if not self.store.per_step or self.estimated_bytes is not None or not self.store.steps:
            return
        timesteps = getattr(getattr(self.pipe, "scheduler", None), "timesteps", None)
        total_steps = len(timesteps) if timesteps is not None else 1
        wanted = total_steps if self.steps == "all" else len([s for s in self.steps if s < total_steps])
        self.estimated_bytes = (self.store.nbytes_per_step() + self.concept_store.nbytes_per_step()) * wanted
        available = psutil.virtual_memory().available * self.memory_fraction
        logger.info("per-step attention storage: %.1f MB for %d steps", self.estimated_bytes / 2**20, wanted)
        if self.estimated_bytes > available:
            raise CaptureMemoryError(
                f"per-step attention storage would take {self.estimated_bytes / 2**30:.2f} GiB for {wanted} steps, "
                f"more than the {available / 2**30:.2f} GiB available; capture fewer layers or steps, "
                "use heads='mean', or use the streaming default (per_step=False)"
            )

    # --- results -----------------------------------------------------------------------
    def attention_maps(self, prompts: Sequence[str] | None = None) -> AttentionMaps:
        """The captured maps with their labels.

        Words are aligned from the prompt text the pipeline was given (recorded from its
        tokenizer during the call), so learned words, punctuation and case are found as written.
        With guidance="uncond" the maps are labelled with the negative prompt's words (none
        when the pipeline had no negative prompt).

        Args:
            prompts: the prompts (negative prompts with guidance="uncond"), only needed when
                the pipeline was given prompt embeddings instead of text.

        Raises:
            RuntimeError: if nothing was captured (no pipeline call inside the trace), or the
                prompt text cannot be known.
        """
        if not self.store.sums and not self.store.steps:
            raise RuntimeError("no attention was captured: call the pipeline inside the `with trace(pipe)` block, with layers selected")
        maps = self.store.result()
        rows = next(iter(maps.values())).shape[0]
        texts = self._prompt_texts(prompts, rows)
        cross = [layer.path for layer in self.layers if layer.kind == "cross" and layer.path in maps]
        n_tokens = maps[cross[0]].shape[-3] if cross else None
        layers = [layer for layer in self.layers if layer.path in self.store.shapes]
        call = 1 if self.guidance == "uncond" else 0  # the text encoder's call that gave these maps' text
        encoded = self.encoded_ids[call].shape[1] if call < len(self.encoded_ids) else n_tokens
        if self.architecture.text_window == "tail" and n_tokens is not None and encoded > n_tokens:
            tokens = PromptTokens.from_pipeline(self.pipe, texts, self.architecture.text, encoded).tail(encoded, n_tokens)
        else:
            tokens = PromptTokens.from_pipeline(self.pipe, texts, self.architecture.text, n_tokens)
        return self._labelled(maps, layers, tokens, len(texts), self.store.keep_heads, f"{self.queries} queries")

    def concept_maps(self, prompts: Sequence[str] | None = None, softmax: bool = True) -> AttentionMaps:
        """The concept maps in attention-output space, labelled with the concept words (one
        token slot each; `maps.word("circle", prompt=0)` as for heat maps).

        Args:
            prompts: as for `attention_maps`.
            softmax: at each layer (and step), turn the concepts' scores at each image position
                into a distribution over the concepts, as ConceptAttention does; False keeps
                the raw dot products, which do not depend on the other concepts.

        Raises:
            RuntimeError: no concepts were asked for, or nothing was captured.
        """
        if not self.concepts:
            raise RuntimeError("no concept maps: pass concepts=[...] to trace() for them")
        if not self.concept_store.sums and not self.concept_store.steps:
            raise RuntimeError("no concept maps were captured: call the pipeline inside the `with trace(pipe, concepts=...)` block")
        maps = self.concept_store.result()
        if softmax:  # (rows, [step], concept, y, x): over the concepts
            maps = {path: scores.softmax(dim=-3) for path, scores in maps.items()}
        rows = next(iter(maps.values())).shape[0]
        texts = self._prompt_texts(prompts, rows)
        layers = [layer for layer in self.concept_layers if layer.path in maps]
        return self._labelled(maps, layers, concept_tokens(texts, self.concepts), len(texts), False, "concept outputs")

    def _labelled(self, maps: dict, layers: list[AttentionLayer], tokens: PromptTokens, n_texts: int, heads_kept: bool,
                  source: str) -> AttentionMaps:
        rows = next(iter(maps.values())).shape[0]
        scale = getattr(self.pipe, "vae_scale_factor", 1) * self.architecture.packed
        return AttentionMaps(
            maps=maps,
            layers=layers,
            tokens=tokens,
            image_size=(self.latent_hw[0] * scale, self.latent_hw[1] * scale),
            steps=list(self.captured_steps),
            timesteps=list(self.timesteps),
            per_step=self.store.per_step,
            heads_kept=heads_kept,
            guidance=self.guidance,
            images_per_prompt=rows // n_texts,
            source=source,
        )

    def _prompt_texts(self, prompts: Sequence[str] | None, rows: int) -> list[str]:
        texts = list(prompts) if prompts is not None else self._recorded_prompts()
        if texts is None or rows % len(texts):
            raise RuntimeError(
                f"the {rows} traced image(s) cannot be matched to prompt text "
                f"({'none was recorded' if texts is None else f'{len(texts)} prompt(s)'}): the pipeline was given "
                "prompt embeddings instead of text; pass the prompts as written: tr.attention_maps(prompts=[...])"
            )
        return texts

    def _recorded_prompts(self) -> list[str] | None:
        recorder = self.recorders.get("tokenizer")
        texts = recorded_texts(recorder, self.encoded_ids, 0)
        if texts is None:
            return None
        if self.guidance == "uncond":
            # no second encoder call: the negative conditioning was zeros or given as embeddings
            negative = recorded_texts(recorder, self.encoded_ids, 1)
            texts = negative if negative is not None else [""] * len(texts)
        if not hasattr(self.pipe, "maybe_convert_prompt"):
            for i, text in enumerate(texts):
                if expand_slots(text, self.pipe.tokenizer) != text:
                    raise ValueError(
                        f"prompt {i} ({text!r}) has a multi-vector learned word written once: {type(self.pipe).__name__} does not "
                        "expand learned words as Stable Diffusion's pipelines do, so only its first vector reached the model; "
                        "give the pipeline workbench.capture.tokens.expand_slots(prompt, pipe.tokenizer)"
                    )
        return [collapse_slots(text, self.pipe.tokenizer) for text in texts]

    def activations(self) -> Activations:
        """The recorded module outputs (trace(..., modules=[...]))."""
        if not self.recorder.records:
            raise RuntimeError("no activations were recorded: pass modules=[...] to trace() and call the pipeline inside it")
        return self.recorder.result()

    def __enter__(self) -> "Trace":
        if self._hooks is not None:
            raise RuntimeError("this trace is already open; start another with trace(pipe)")
        self._hooks = ExitStack()
        try:
            if self.concepts:
                joint = [layer for layer in attention_layers(self.denoiser) if layer.stream == "joint"]
                self.stream = ConceptStream(self.denoiser, joint, self.concept_layers, self.concept_embeddings, lambda: self._rows, self._concept_sink)
                for handle in self.stream.hooks():
                    self._hooks.callback(handle.remove)
            self._hooks.enter_context(capturing(self.denoiser, self.layers, lambda batch: self._rows, self._sink, lambda: self.text_length, self.queries))
            self.recorders = self._hooks.enter_context(recording_prompts(self.pipe))
            self._hooks.callback(self.denoiser.register_forward_pre_hook(self._on_denoiser, with_kwargs=True).remove)
            for handle in register(self.pipe, self.modules, self.recorder):
                self._hooks.callback(handle.remove)
            text_encoder = getattr(self.pipe, "text_encoder", None)
            if text_encoder is not None:
                self._hooks.callback(text_encoder.register_forward_pre_hook(self._on_text_encoder, with_kwargs=True).remove)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _encode_concepts(self) -> torch.Tensor:
        limit = sum(getattr(self.pipe, name).model_max_length for name in self.architecture.text if getattr(self.pipe, name, None) is not None)
        return encode_concepts(self.pipe, self.concepts, self.architecture.text, limit)

    def __exit__(self, *exc_info) -> None:
        """Every hook removed and the pipeline's own processors and tokenizers back, also after an exception."""
        hooks, self._hooks = self._hooks, None
        if hooks is not None:
            hooks.close()


trace = Trace  # DAAM's spelling: `with trace(pipe) as tr:`
