"""Where captured attention goes: a streaming sum (default) or one entry per step.

The streaming store keeps one float32 running sum per layer, so its size does not grow with
the number of denoising steps. Per-step storage keeps every step and is sized up front.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


class CaptureMemoryError(MemoryError):
    """Per-step storage that would not fit in the memory available."""


@dataclass
class AttentionStore:
    """Maps per layer path: (rows, [heads], keys, y, x) sums, or lists of them per step."""

    keep_heads: bool
    per_step: bool
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    steps: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, path: str, probabilities: torch.Tensor, shape: tuple[int, int]) -> None:
        """Add float32 (rows, heads, queries, keys) probabilities of one step of one layer."""
        maps = probabilities if self.keep_heads else probabilities.mean(dim=1)
        maps = maps.transpose(-1, -2).reshape(*maps.shape[:-2], maps.shape[-1], *shape)
        self.shapes[path] = shape
        if self.per_step:
            self.steps.setdefault(path, []).append(maps.detach().to("cpu", copy=True))
            return
        if path in self.sums:
            self.sums[path] += maps
        else:
            self.sums[path] = maps.detach().clone()
        self.counts[path] = self.counts.get(path, 0) + 1

    def nbytes_per_step(self) -> int:
        """Bytes one step adds in per-step mode (known once every layer has been seen)."""
        source = self.steps if self.per_step else {}
        return sum(entries[0].numel() * 4 for entries in source.values() if entries)

    def result(self) -> dict[str, torch.Tensor]:
        """Per layer: the mean over captured steps (rows, [heads], keys, y, x), or the stack of
        steps (rows, step, [heads], keys, y, x) in per-step mode; on the CPU."""
        if self.per_step:
            return {path: torch.stack(entries, dim=1) for path, entries in self.steps.items()}
        return {path: (total / self.counts[path]).cpu() for path, total in self.sums.items()}

    @property
    def nbytes(self) -> int:
        if self.per_step:
            return sum(e.numel() * 4 for entries in self.steps.values() for e in entries)
        return sum(t.numel() * 4 for t in self.sums.values())
