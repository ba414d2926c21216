"""Training states: saved atomically, loaded without unpickling arbitrary objects."""

from __future__ import annotations

from pathlib import Path

import torch

from workbench.files import atomic_path



def save_state(state: dict, path: str | Path) -> None:
    """Save a training state (tensors, numbers, strings, nested dicts) atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | Path) -> dict:
    """Load a training state without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)
