"""The captured attention maps with their labels: layers, tokens, words, steps.

Dimensions, in this order where they occur: prompt, step, head, token, y, x. Each layer keeps
its own resolution; `word()` and `stack()` upsample to a common one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from ..files import atomic_path
from .architectures import AttentionLayer, select_layers
from .tokens import WordSpan, align_words, find_word

FORMAT_VERSION = 1


def _collapse_slots(text: str, tokenizer) -> str:
    """Undo the multi-vector expansion in decoded text: "a S* S*_1 S*_2 toy" -> "a S* toy"."""
    added = tokenizer.get_added_vocab()
    words = [w for w in text.split() if not (re.fullmatch(r".+_\d+", w) and w.rsplit("_", 1)[0] in added)]
    return " ".join(words)


@dataclass
class PromptTokens:
    """Per prompt: its text, its token strings (padded sequence) and its words' token slots."""

    texts: list[str]
    tokens: list[list[str]]
    words: list[list[WordSpan]]

    @classmethod
    def from_pipeline(cls, pipe, prompt_ids: torch.Tensor | None, prompts: Sequence[str] | None) -> "PromptTokens":
        tokenizer = pipe.tokenizer
        convert = (lambda text: pipe.maybe_convert_prompt(text, tokenizer)) if hasattr(pipe, "maybe_convert_prompt") else None
        if prompts is not None:
            prompts = [prompts] if isinstance(prompts, str) else list(prompts)
            expanded = [convert(p) for p in prompts] if convert else prompts
            ids = tokenizer(expanded, padding="max_length", max_length=tokenizer.model_max_length, truncation=True).input_ids
        elif prompt_ids is not None:
            ids = prompt_ids.tolist()
            prompts = [_collapse_slots(tokenizer.decode(row, skip_special_tokens=True), tokenizer) for row in ids]
        else:
            raise ValueError("the text encoder was not called (prompt embeddings passed directly?); give attention_maps(prompts=[...])")
        return cls(
            texts=list(prompts),
            tokens=[tokenizer.convert_ids_to_tokens(row) for row in ids],
            words=[align_words(text, tokenizer, len(row), convert) for text, row in zip(prompts, ids)],
        )


@dataclass
class AttentionMaps:
    """Captured attention, per layer path: (prompt, [step], [head], token, y, x) float32.

    Example:
        >>> maps.word("red", prompt=0)                  # (y, x) at image resolution
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
    _resampled: dict = field(default_factory=dict, repr=False)

    # --- selection ---------------------------------------------------------------------
    @property
    def dims(self) -> tuple[str, ...]:
        return ("prompt",) + (("step",) if self.per_step else ()) + (("head",) if self.heads_kept else ()) + ("token", "y", "x")

    def select(self, layers: str | Sequence[str] | None = None, kind: str = "cross") -> list[AttentionLayer]:
        """Captured layers of `kind` matching `layers` (selectors as in trace(); None: all)."""
        return select_layers(self.layers, "all" if layers is None else layers, kind)

    def stack(
        self, layers: str | Sequence[str] | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Cross-attention maps of the selected layers upsampled to `size` (default: image size),
        stacked as (prompt, [step], layer, [head], token, y, x)."""
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

    def self_attention(self, prompt: int = 0, layers: str | Sequence[str] | None = None) -> torch.Tensor:
        """Self-attention of one prompt, mean over the selected layers (and steps, heads):
        (queries, keys) with both indexed y * width + x at the layers' resolution.

        Raises:
            ValueError: if the selected self-attention layers differ in resolution.
        """
        self._check_prompt(prompt)
        chosen = self.select(layers, kind="self")
        shapes = {tuple(self.maps[layer.path].shape[-2:]) for layer in chosen}
        if len(shapes) != 1:
            raise ValueError(f"self-attention layers of different resolutions {sorted(shapes)}; select layers of one resolution")
        per_layer = []
        for layer in chosen:
            maps = self.maps[layer.path][prompt]  # ([step], [head], keys, y, x)
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
    ) -> torch.Tensor:
        """Heat map of a word: mean over its tokens and the selected layers, (y, x) at `size`.

        Args:
            word: the word as written in the prompt (learned words such as "<new1>" too).
            prompt: index of the prompt in the batch.
            occurrence: which appearance of a repeated word (0 = first).
            layers: layer selectors (default: every captured cross-attention layer).
            size: output (y, x); default the generated image's size.
            step: with per-step storage, the position in `steps` (default: mean over steps).
            head: with heads kept, one head (default: mean over heads).
        """
        span = self.word_span(word, prompt, occurrence)
        return self._reduce(self.stack(layers, size)[prompt], list(span.tokens), step, head)

    def token(self, index: int, prompt: int = 0, layers=None, size=None, step=None, head=None) -> torch.Tensor:
        """Heat map of one token slot (start/end tokens included), (y, x)."""
        self._check_prompt(prompt)
        n = len(self.tokens.tokens[prompt])
        if not 0 <= index < n:
            raise IndexError(f"token index {index} out of range; prompt {prompt} has {n} token slots")
        return self._reduce(self.stack(layers, size)[prompt], [index], step, head)

    def _reduce(self, maps: torch.Tensor, token_slots: list[int], step, head) -> torch.Tensor:
        # maps: ([step], layer, [head], token, y, x) for one prompt
        if self.per_step:
            maps = maps.mean(0) if step is None else maps[step]
        maps = maps.mean(0)  # layers
        if self.heads_kept:
            maps = maps.mean(0) if head is None else maps[head]
        return maps[token_slots].mean(0)

    def _check_prompt(self, prompt: int) -> None:
        if not 0 <= prompt < len(self.tokens.texts):
            raise IndexError(f"prompt {prompt} out of range; {len(self.tokens.texts)} prompt(s) were traced")

    # --- tidy form ---------------------------------------------------------------------
    def to_frame(self, words: Sequence[str] | None = None, layers=None, size: tuple[int, int] | None = None) -> pd.DataFrame:
        """Long form, one row per (prompt, layer, word, y, x): columns prompt, layer, group, word,
        occurrence, y, x, value. Maps are per layer at `size` (default: the layer's own size
        upsampled to 32x32 or less), heads and steps averaged."""
        size = tuple(size or (min(32, self.image_size[0]), min(32, self.image_size[1])))
        rows = []
        ys, xs = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="ij")
        for prompt, spans in enumerate(self.tokens.words):
            for span in spans:
                if (words is not None and span.word not in words) or not span.tokens:
                    continue
                for layer in self.select(layers):
                    maps = self._resize(layer.path, size)[prompt]
                    value = self._reduce(maps[None] if not self.per_step else maps[:, None], list(span.tokens), None, None)
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
        }
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in self.maps.items()}, str(tmp), metadata={"workbench": json.dumps(meta)})

    @classmethod
    def load(cls, path: str | Path) -> "AttentionMaps":
        """Read a file written by `save`.

        Raises:
            ValueError: if the file holds no workbench attention maps or another format version.
        """
        with safe_open(str(path), framework="pt") as f:
            header = (f.metadata() or {}).get("workbench")
            if header is None:
                raise ValueError(f"{path} holds no workbench attention maps (no 'workbench' metadata)")
            meta = json.loads(header)
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"{path} has attention-map format {meta.get('format_version')}, this version reads {FORMAT_VERSION}")
            maps = {key: f.get_tensor(key) for key in f.keys()}
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
        )
