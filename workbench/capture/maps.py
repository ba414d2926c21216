"""The captured attention maps with their labels: layers, tokens, words, steps.

Dimensions, in this order where they occur: prompt, step, head, token, y, x. Each layer keeps
its own resolution; `word()` and `stack()` upsample to a common one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..files import atomic_path
from .architectures import AttentionLayer, select_layers
from .tokens import WordSpan, align_words, expand_slots, find_word

FORMAT_VERSION = 1


@dataclass
class PromptTokens:
    """Per prompt: its text, its token strings (padded sequence) and its words' token slots."""

    texts: list[str]
    tokens: list[list[str]]
    words: list[list[WordSpan]]

    @classmethod
    def from_pipeline(cls, pipe, prompts: str | Sequence[str], tokenizers: Sequence[str] = ("tokenizer",), n_tokens: int | None = None) -> "PromptTokens":
        """Align the prompts as written (learned words collapsed, see `collapse_slots`) with the
        pipeline's tokenizer, expanding multi-vector words as the pipeline does (`expand_slots`
        where the pipeline has no expansion of its own and is given expanded prompts).

        Args:
            tokenizers: the pipeline's tokenizers whose sequences follow each other in the text
                keys (SD3: "tokenizer" then "tokenizer_3", CLIP's 77 slots then T5's); a word's
                slots are its slots in every part.
            n_tokens: the text keys captured; the last part fills what the others leave
                (e.g. SD3's `max_sequence_length`). Default: each tokenizer's own maximum.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        tokenizers = [name for name in tokenizers if getattr(pipe, name, None) is not None]  # SD3 may run without T5
        tokens: list[list[str]] = [[] for _ in prompts]
        words: list[list[WordSpan]] = [[] for _ in prompts]
        offset = 0
        for position, name in enumerate(tokenizers):
            tokenizer = getattr(pipe, name)
            # the pipeline's own multi-vector expansion, or the same for pipelines without one
            # (they are given prompts expanded: see tracing's check and analyses.generation)
            convert = ((lambda text, t=tokenizer: pipe.maybe_convert_prompt(text, t)) if hasattr(pipe, "maybe_convert_prompt")
                       else (lambda text, t=tokenizer: expand_slots(text, t)))
            last = position == len(tokenizers) - 1
            length = n_tokens - offset if last and n_tokens is not None else tokenizer.model_max_length
            expanded = [convert(p) for p in prompts] if convert else prompts
            ids = tokenizer(expanded, padding="max_length", max_length=length, truncation=True).input_ids
            for i, (text, row) in enumerate(zip(prompts, ids)):
                tokens[i] += tokenizer.convert_ids_to_tokens(row)
                spans = align_words(text, tokenizer, len(row), convert)
                if not words[i]:
                    words[i] = [WordSpan(s.word, s.occurrence, tuple(t + offset for t in s.tokens)) for s in spans]
                else:
                    words[i] = [WordSpan(w.word, w.occurrence, w.tokens + tuple(t + offset for t in s.tokens)) for w, s in zip(words[i], spans)]
            offset += length
        return cls(texts=prompts, tokens=tokens, words=words)

    def tail(self, length: int, keys: int) -> "PromptTokens":
        """The labels of text keys that are the first token and the last `keys` - 1 tokens of
        sequences of `length` (Sana puts an instruction before the prompt and keeps those):
        words with every slot kept stay (the prompt's), the others go; texts become the kept
        words."""
        keep = [0] + list(range(length - keys + 1, length))
        where = {old: new for new, old in enumerate(keep)}
        texts, tokens, words = [], [], []
        for row_tokens, spans in zip(self.tokens, self.words):
            kept = [s for s in spans if s.tokens and all(t in where for t in s.tokens)]
            seen: dict[str, int] = {}
            renamed = []
            for span in kept:
                renamed.append(WordSpan(span.word, seen.get(span.word, 0), tuple(where[t] for t in span.tokens)))
                seen[span.word] = seen.get(span.word, 0) + 1
            texts.append(" ".join(span.word for span in kept))
            tokens.append([row_tokens[k] for k in keep])
            words.append(renamed)
        return PromptTokens(texts=texts, tokens=tokens, words=words)


@dataclass
class AttentionMaps:
    """Captured attention, per layer path: (image, [step], [head], token, y, x) float32.

    The first dimension runs over the generated images, prompt-major: row = prompt *
    images_per_prompt + image (diffusers' `num_images_per_prompt` order). Calls take `prompt` and `image`; with several
    images per prompt, `image=None` averages them.

    Example:
        >>> maps.word("red", prompt=0)                  # (y, x) at image resolution
        >>> maps.word("<cat-toy>", prompt=1, image=0)   # learned words by name
        >>> maps.word("circle", layers="up.1", size=(16, 16))
        >>> maps.to_frame(words=["red", "circle"])      # tidy long form
    """

    maps: dict[str, torch.Tensor]
    layers: list[AttentionLayer]
    tokens: PromptTokens
    image_size: tuple[int, int]
    steps: list[int]
    timesteps: list[float]
    per_step: bool
    heads_kept: bool
    guidance: str
    images_per_prompt: int = 1
    # what a value is: "image queries" (an image position's attention on the word's keys),
    # "text queries" (the word's attention on the image positions, joint attention only) or
    # "concept outputs" (concept maps in attention-output space, a distribution over concepts)
    source: str = "image queries"
    _resampled: dict = field(default_factory=dict, repr=False)

    # --- selection ---------------------------------------------------------------------
    @property
    def dims(self) -> tuple[str, ...]:
        return ("image",) + (("step",) if self.per_step else ()) + (("head",) if self.heads_kept else ()) + ("token", "y", "x")

    def select(self, layers: str | Sequence[str] | None = None, kind: str = "cross") -> list[AttentionLayer]:
        """Captured layers of `kind` matching `layers` (selectors as in trace(); None: all)."""
        return select_layers(self.layers, "all" if layers is None else layers, kind)

    def stack(
        self, layers: str | Sequence[str] | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Cross-attention maps of the selected layers upsampled to `size` (default: image size),
        stacked as (image, [step], layer, [head], token, y, x). Every token of every row is
        upsampled (large at 512 px); `word()` and `token()` upsample only what they return."""
        size = tuple(size or self.image_size)
        chosen = self.select(layers)
        resized = [self._resize(layer.path, size) for layer in chosen]
        return torch.stack(resized, dim=2 if self.per_step else 1)

    def _resize(self, path: str, size: tuple[int, int]) -> torch.Tensor:
        key = (path, size)
        if key not in self._resampled:
            maps = self.maps[path]
            flat = maps.reshape(-1, 1, *maps.shape[-2:])
            up = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
            self._resampled[key] = up.reshape(*maps.shape[:-2], *size)
        return self._resampled[key]

    def self_attention(self, prompt: int = 0, layers: str | Sequence[str] | None = None, image: int | None = None) -> torch.Tensor:
        """Self-attention of one prompt, mean over the selected layers (and steps, heads, and
        its images unless `image` is given): (queries, keys) with both indexed y * width + x at
        the layers' resolution.

        Raises:
            ValueError: if the selected self-attention layers differ in resolution.
        """
        rows = self.rows(prompt, image)
        chosen = self.select(layers, kind="self")
        shapes = {tuple(self.maps[layer.path].shape[-2:]) for layer in chosen}
        if len(shapes) != 1:
            raise ValueError(f"self-attention layers of different resolutions {sorted(shapes)}; select layers of one resolution")
        per_layer = []
        for layer in chosen:
            maps = self.maps[layer.path][rows].mean(0)  # ([step], [head], keys, y, x)
            while maps.ndim > 3:
                maps = maps.mean(0)
            per_layer.append(maps.flatten(1).T)  # (queries, keys)
        return torch.stack(per_layer).mean(0)

    def word_slots(self, prompt: int = 0) -> list[int]:
        """The token slots of every word of the prompt (start, end and padding left out)."""
        self._check_prompt(prompt)
        return [slot for span in self.tokens.words[prompt] for slot in span.tokens]

    def end_token(self, prompt: int = 0) -> int:
        """The slot of the end-of-text token: the one after the prompt's last word."""
        return max(self.word_slots(prompt), default=0) + 1

    def word_span(self, word: str, prompt: int = 0, occurrence: int = 0) -> WordSpan:
        """The token slots of `word` in prompt `prompt` (WordNotFoundError names the words)."""
        self._check_prompt(prompt)
        return find_word(self.tokens.words[prompt], word, occurrence)

    def word(
        self,
        word: str,
        prompt: int = 0,
        occurrence: int = 0,
        layers: str | Sequence[str] | None = None,
        size: tuple[int, int] | None = None,
        step: int | None = None,
        head: int | None = None,
        image: int | None = None,
    ) -> torch.Tensor:
        """Heat map of a word: mean over its tokens and the selected layers, (y, x) at `size`.

        Only this word's maps are upsampled: each layer is reduced to one (y, x) map at its
        own resolution first (bilinear upsampling is linear, so the result is the same).

        Args:
            word: the word as written in the prompt (learned words such as "<new1>" too).
            prompt: index of the prompt in the batch.
            occurrence: which appearance of a repeated word (0 = first).
            layers: layer selectors (default: every captured cross-attention layer).
            size: output (y, x); default the generated image's size.
            step: with per-step storage, the position in `steps` (default: mean over steps).
            head: with heads kept, one head (default: mean over heads).
            image: which image of the prompt (`num_images_per_prompt`); default their mean.
        """
        span = self.word_span(word, prompt, occurrence)
        return self._heat(list(span.tokens), prompt, image, layers, size, step, head)

    def token(self, index: int, prompt: int = 0, layers=None, size=None, step=None, head=None, image: int | None = None) -> torch.Tensor:
        """Heat map of one token slot (start/end tokens included), (y, x)."""
        self._check_prompt(prompt)
        n = len(self.tokens.tokens[prompt])
        if not 0 <= index < n:
            raise IndexError(f"token index {index} out of range; prompt {prompt} has {n} token slots")
        return self._heat([index], prompt, image, layers, size, step, head)

    def _heat(self, slots: list[int], prompt: int, image: int | None, layers, size, step, head) -> torch.Tensor:
        """Mean over the slots, rows, steps/heads (or the one asked for) and layers, (y, x) at
        `size`; layers of one resolution are averaged before their single upsampling."""
        size = tuple(size or self.image_size)
        rows = self.rows(prompt, image)
        by_resolution: dict[tuple[int, int], list[torch.Tensor]] = defaultdict(list)
        chosen = self.select(layers)  # raises when none was captured, never an empty mean
        slot_index = torch.tensor(slots)
        for layer in chosen:
            maps = self.maps[layer.path]  # (row, [step], [head], token, y, x)
            one = maps.index_select(-3, slot_index)[rows].mean(0)  # ([step], [head], slot, y, x)
            if self.per_step:
                one = one.mean(0) if step is None else one[step]
            if self.heads_kept:
                one = one.mean(0) if head is None else one[head]
            by_resolution[tuple(one.shape[-2:])].append(one.mean(0))
        total = torch.zeros(size)
        for group in by_resolution.values():
            mean = torch.stack(group).mean(0)[None, None]
            total += F.interpolate(mean, size=size, mode="bilinear", align_corners=False)[0, 0] * len(group)
        return total / len(chosen)

    def rows(self, prompt: int = 0, image: int | None = None) -> list[int]:
        """The rows of the maps that hold prompt `prompt`'s images (or its image `image`).

        Raises:
            IndexError: a prompt or image out of range (names how many were traced).
        """
        self._check_prompt(prompt)
        n = self.images_per_prompt
        if image is None:
            return list(range(prompt * n, (prompt + 1) * n))
        if not 0 <= image < n:
            raise IndexError(f"image {image} out of range; each prompt has {n} image(s) (num_images_per_prompt)")
        return [prompt * n + image]

    def _check_prompt(self, prompt: int) -> None:
        if not 0 <= prompt < len(self.tokens.texts):
            raise IndexError(f"prompt {prompt} out of range; {len(self.tokens.texts)} prompt(s) were traced")

    # --- tidy form ---------------------------------------------------------------------
    def to_frame(self, words: Sequence[str] | None = None, layers=None, size: tuple[int, int] | None = None) -> pd.DataFrame:
        """Long form, one row per (prompt, layer, word, y, x): columns prompt, layer, group, word,
        occurrence, y, x, value. Maps are per layer at `size` (default: the layer's own size
        upsampled to 32x32 or less), heads, steps and a prompt's images averaged."""
        size = tuple(size or (min(32, self.image_size[0]), min(32, self.image_size[1])))
        rows = []
        ys, xs = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="ij")
        for prompt, spans in enumerate(self.tokens.words):
            for span in spans:
                if (words is not None and span.word not in words) or not span.tokens:
                    continue
                for layer in self.select(layers):
                    value = self._heat(list(span.tokens), prompt, None, [layer.path], size, None, None)
                    rows.append(pd.DataFrame({
                        "prompt": prompt, "layer": layer.short, "group": layer.group, "word": span.word,
                        "occurrence": span.occurrence, "y": ys.ravel(), "x": xs.ravel(), "value": value.numpy().ravel(),
                    }))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["prompt", "layer", "group", "word", "occurrence", "y", "x", "value"])

    # --- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write one safetensors file: tensors by layer path, labels as JSON metadata."""
        meta = {
            "format_version": FORMAT_VERSION,
            "layers": [layer.__dict__ for layer in self.layers],
            "texts": self.tokens.texts,
            "tokens": self.tokens.tokens,
            "words": [[[s.word, s.occurrence, list(s.tokens)] for s in spans] for spans in self.tokens.words],
            "image_size": list(self.image_size),
            "steps": self.steps,
            "timesteps": self.timesteps,
            "per_step": self.per_step,
            "heads_kept": self.heads_kept,
            "guidance": self.guidance,
            "images_per_prompt": self.images_per_prompt,
            "source": self.source,
        }
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in self.maps.items()}, str(tmp), metadata={"workbench": json.dumps(meta)})

    @classmethod
    def load(cls, path: str | Path) -> "AttentionMaps":
        """Read a file written by `save`.

        Raises:
            FileNotFoundError: no such file.
            ValueError: a damaged file, one holding no workbench attention maps, or another
                format version (the file is named).
        """
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} does not exist; expected attention maps written by AttentionMaps.save")
        try:
            with safe_open(str(path), framework="pt") as f:
                header = (f.metadata() or {}).get("workbench")
                if header is None:
                    raise ValueError(f"{path} holds no workbench attention maps (no 'workbench' metadata)")
                meta = json.loads(header)
                if meta.get("format_version") != FORMAT_VERSION:
                    raise ValueError(f"{path} has attention-map format {meta.get('format_version')}, this version reads {FORMAT_VERSION}")
                maps = {key: f.get_tensor(key) for key in f.keys()}
        except SafetensorError as error:
            raise ValueError(f"{path}: not a readable safetensors file ({error}); expected attention maps written by AttentionMaps.save") from None
        words = [[WordSpan(w, o, tuple(t)) for w, o, t in spans] for spans in meta["words"]]
        return cls(
            maps=maps,
            layers=[AttentionLayer(**layer) for layer in meta["layers"]],
            tokens=PromptTokens(meta["texts"], meta["tokens"], words),
            image_size=tuple(meta["image_size"]),
            steps=meta["steps"],
            timesteps=meta["timesteps"],
            per_step=meta["per_step"],
            heads_kept=meta["heads_kept"],
            guidance=meta["guidance"],
            images_per_prompt=meta.get("images_per_prompt", 1),
            source=meta.get("source", "image queries"),
        )
