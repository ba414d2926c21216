"""Concept sets (named sets of examples) and their activations at a module, cached on disk.

A concept is images with their captions (ShapesWorld factor queries such as `color=red`),
prompts alone (text concepts), or given embeddings. Random sets are drawn the same way without
the query. Activations are keyed by model, module, concept content, timestep and seed, written
atomically as safetensors, and reused on the next run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..capture.activations import first_tensor, pool_tensor, resolve_module
from ..files import atomic_path
from ..world.scenes import sample_scene, scenes_to_tensor
from .targets import noised
from ..world.vocabulary import FACTOR_VALUES


@dataclass(frozen=True)
class ConceptSet:
    """A named set of examples: images (n, 3, y, x) in [-1, 1] with prompts, or prompts alone,
    or embeddings (n, d) given directly."""

    name: str
    prompts: tuple[str, ...] = ()
    images: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None

    def __post_init__(self):
        n = len(self)
        if n < 2:
            raise ValueError(f"concept set {self.name!r} has {n} example(s); a concept needs at least 2")
        if self.images is not None and len(self.prompts) not in (0, len(self.images)):
            raise ValueError(f"concept set {self.name!r} has {len(self.images)} images but {len(self.prompts)} prompts")

    def __len__(self) -> int:
        if self.embeddings is not None:
            return len(self.embeddings)
        return len(self.images) if self.images is not None else len(self.prompts)

    def fingerprint(self) -> str:
        """A hash of the content (not the name): equal sets share cached activations."""
        digest = hashlib.sha256()
        for tensor in (self.images, self.embeddings):
            if tensor is not None:
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        digest.update("\n".join(self.prompts).encode())
        return digest.hexdigest()[:16]


def parse_query(query: str) -> dict[str, str]:
    """"color=red,shape=circle" -> {"color": "red", "shape": "circle"} (checked against the world)."""
    wanted = {}
    for part in filter(None, (p.strip() for p in query.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in FACTOR_VALUES:
            raise ValueError(f"bad factor query {part!r} in {query!r}; expected factor=value with a factor among {', '.join(FACTOR_VALUES)}")
        if value not in FACTOR_VALUES[key]:
            raise ValueError(f"{key}={value!r} is not a ShapesWorld value; {key} is one of {', '.join(FACTOR_VALUES[key])}")
        wanted[key] = value
    return wanted


def from_query(name: str, query: str, n: int, seed: int = 0, image_size: int = 32) -> ConceptSet:
    """n one-object ShapesWorld scenes matching a factor query ("" for a random set)."""
    wanted = parse_query(query)
    rng = np.random.default_rng(seed)
    scenes = []
    while len(scenes) < n:
        scene = sample_scene(rng, 1, image_size)
        obj = scene.objects[0]
        values = {"color": obj.color, "shape": obj.shape, "size": obj.size, "background": scene.background}
        if all(values[k] == v for k, v in wanted.items()):
            scenes.append(scene)
    return ConceptSet(name, tuple(s.caption for s in scenes), scenes_to_tensor(scenes))


def random_sets(n_sets: int, size: int, seed: int = 0, image_size: int = 32) -> list[ConceptSet]:
    """n_sets random concept sets of one-object scenes, each drawn with its own seed."""
    return [from_query(f"random{r}", "", size, seed=seed * 10_007 + r + 1, image_size=image_size) for r in range(n_sets)]


def model_fingerprint(pipe) -> str:
    """A cheap identity of the weights: the source folder and a hash of a few parameters."""
    digest = hashlib.sha256(str(getattr(pipe, "name_or_path", "")).encode())
    for component in (pipe.unet, pipe.text_encoder):
        params = list(component.parameters())
        for p in (params[0], params[-1]):
            digest.update(p.detach().float().cpu().contiguous().numpy().tobytes()[:4096])
    return digest.hexdigest()[:16]


@torch.no_grad()
def concept_activations(
    pipe, concept: ConceptSet, module: str, timestep: int = 400, seed: int = 0, cache_dir: str | Path | None = None
) -> torch.Tensor:
    """Pooled activations (n, channels) of `module` for the concept's examples.

    UNet modules see the images noised to `timestep` (seeded noise) with their prompts as
    conditioning; text-encoder modules see the prompts; embeddings are returned as given.

    Raises:
        ValueError: an unknown module (listing what exists), or a concept without what the module needs.
    """
    if concept.embeddings is not None:
        return concept.embeddings.float()
    layer = resolve_module(pipe, module)
    key = hashlib.sha256(f"{model_fingerprint(pipe)}|{module}|{concept.fingerprint()}|{timestep}|{seed}".encode()).hexdigest()[:20]
    cache = Path(cache_dir) / f"{concept.name}-{module}-{key}.safetensors" if cache_dir else None
    if cache is not None and cache.exists():
        return load_file(str(cache))["activations"]
    kept = []
    handle = layer.register_forward_hook(lambda m, i, o: kept.append(pool_tensor(first_tensor(o).float(), "mean")))
    try:
        ids = pipe.tokenize(list(concept.prompts)) if concept.prompts else None
        if module.startswith("unet."):
            if concept.images is None or ids is None:
                raise ValueError(f"concept {concept.name!r} needs images with prompts for the UNet module {module!r}")
            noisy, t = noised(pipe.scheduler, concept.images, timestep, seed)
            pipe.unet(noisy.to(pipe.device), t.to(pipe.device), encoder_hidden_states=pipe.text_encoder(ids.to(pipe.device))[0])
        else:
            if ids is None:
                raise ValueError(f"concept {concept.name!r} needs prompts for the module {module!r}")
            pipe.text_encoder(ids.to(pipe.device))
    finally:
        handle.remove()
    activations = kept[-1].cpu()
    if not torch.isfinite(activations).all():
        raise ValueError(f"activations of {concept.name!r} at {module!r} contain NaN or inf")
    if cache is not None:
        with atomic_path(cache) as tmp:
            save_file({"activations": activations.contiguous()}, str(tmp))
    return activations
