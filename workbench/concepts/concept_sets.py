"""Concept sets (named sets of examples) and their activations at a module, cached on disk.

A concept is images (a folder of the user's pictures, with or without prompts), prompts alone
(text concepts), or given embeddings (an embedded world makes its own, e.g. ShapesWorld's factor
queries such as `color=red`). Random sets are drawn from a pool the user gives (a folder, a
prompt list). Activations are keyed by model, module, concept
content, timestep and seed, written atomically as safetensors, and reused on the next run.

How each kind of example reaches each kind of layer:
- denoiser layers ("unet.*", "transformer.*"): images go through the pipeline's VAE and are noised to the
  timestep with seeded noise, conditioned on their prompts (the empty prompt when they have
  none); prompt-only examples all see one seeded noise draw at that level on a blank latent,
  so that only their conditioning differs;
- text-encoder layers ("text_encoder.*", "text_encoder_2.*"): the prompts, encoded by the
  pipeline's own encode_prompt (learned words and SDXL's two encoders included);
- given embeddings are returned as they are, at every layer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..capture.activations import module_tensor, pool_tensor, resolve_module
from ..files import atomic_path
from ..pipelines.image_input import IMAGE_SUFFIXES, encoder_pixels, image_files
from .pipeline_io import Conditioning, denoiser, encode_prompts, predict
from .targets import in_denoiser, model_inputs


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
        if self.embeddings is not None and (self.embeddings.ndim != 2 or not torch.isfinite(self.embeddings).all()):
            raise ValueError(f"concept set {self.name!r}: embeddings must be a finite (n, d) tensor, got shape {tuple(self.embeddings.shape)}")

    @classmethod
    def from_folder(cls, name: str, folder: str | Path, size: int, prompt: str = "") -> "ConceptSet":
        """The images in `folder` (any mode; made RGB, shorter side resized to `size` and
        centre-cropped), each conditioned on `prompt` at denoiser layers.

        Args:
            size: the side in pixels, e.g. the pipeline's resolution (512 for SD 1.5).

        Raises:
            ValueError: a missing folder, or fewer than two readable images (names the folder,
                what was found, and any file that could not be read).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"concept {name!r}: {folder} is not a folder of images")
        files = image_files(folder)
        if len(files) < 2:
            found = ", ".join(sorted(f.name for f in folder.iterdir())[:10]) or "nothing"
            raise ValueError(f"concept {name!r}: {folder} holds {len(files)} image file(s) ({', '.join(IMAGE_SUFFIXES)}); "
                             f"a concept needs at least 2. Found: {found}")
        try:
            pixels = encoder_pixels(files, size)
        except ValueError as error:
            raise ValueError(f"concept {name!r}: {error}") from None
        return cls(name, (prompt,) * len(files), pixels * 2 - 1)

    def subset(self, name: str, index: Sequence[int]) -> "ConceptSet":
        """The examples at `index` as a concept of its own."""
        index = list(index)
        pick = lambda tensor: None if tensor is None else tensor[index]  # noqa: E731
        return ConceptSet(name, tuple(self.prompts[i] for i in index) if self.prompts else (), pick(self.images), pick(self.embeddings))

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


def sets_from_pool(pool: ConceptSet, n_sets: int, size: int, seed: int = 0, prefix: str = "random") -> list[ConceptSet]:
    """n_sets random concept sets of `size` examples each, each drawn without replacement from
    a pool the user gives (a folder of images, a prompt list), seeded, named prefix0, prefix1, ...

    Raises:
        ValueError: a pool smaller than `size`.
    """
    if size > len(pool):
        raise ValueError(f"random sets of {size} examples need a pool of at least {size}; {pool.name!r} has {len(pool)}")
    rng = np.random.default_rng(seed)
    return [pool.subset(f"{prefix}{r}", rng.choice(len(pool), size, replace=False)) for r in range(n_sets)]


def model_fingerprint(pipe) -> str:
    """A cheap identity of the weights: the source folder, a hash of a few parameters, and the
    learned words (their tokens and vectors: inserting a word changes the activations)."""
    digest = hashlib.sha256(str(getattr(pipe, "name_or_path", "")).encode())
    encoders = [getattr(pipe, name, None) for name in ("text_encoder", "text_encoder_2", "text_encoder_3")]
    for component in [denoiser(pipe)] + [e for e in encoders if e is not None]:
        params = list(component.parameters())
        for p in (params[0], params[-1]):
            digest.update(p.detach().float().cpu().contiguous().numpy().tobytes()[:4096])
    for name in ("tokenizer", "tokenizer_2", "tokenizer_3"):
        tokenizer = getattr(pipe, name, None)
        if tokenizer is not None:
            digest.update(repr(sorted(tokenizer.get_added_vocab().items())).encode())
    for encoder in filter(None, encoders):
        table = encoder.get_input_embeddings().weight
        digest.update(table[-8:].detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _cached(path: Path) -> torch.Tensor | None:
    """Activations cached at `path`, or None when absent or unreadable (then recomputed and rewritten)."""
    if not path.exists():
        return None
    try:
        return load_file(str(path))["activations"]
    except (SafetensorError, OSError, KeyError):
        return None


class _Enough(Exception):
    """Raised inside a forward pass once every module asked for has run: the rest is not needed."""


def _forward_until(modules: dict[str, torch.nn.Module], run) -> dict[str, torch.Tensor]:
    """Run `run()` with hooks on the modules; stop it once all have produced their (pooled) output."""
    kept: dict[str, torch.Tensor] = {}

    def keeper(name: str):
        def keep(module, inputs, output):
            kept[name] = pool_tensor(module_tensor(module, output).float(), "mean")
            if len(kept) == len(modules):
                raise _Enough

        return keep

    handles = [module.register_forward_hook(keeper(name)) for name, module in modules.items()]
    try:
        run()
    except _Enough:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return kept


def _conditioning(pipe, prompts: Sequence[str]) -> Conditioning:
    """The pipeline's conditioning for prompts, each distinct prompt encoded once."""
    unique = list(dict.fromkeys(prompts))
    encoded = encode_prompts(pipe, unique)
    return encoded.rows(torch.tensor([unique.index(p) for p in prompts], device=encoded.states.device))


def _compute(pipe, concepts: list[ConceptSet], modules: dict[str, torch.nn.Module], timestep: int, seed: int, batch_size: int):
    """name -> module -> pooled activations, all concepts in shared batches, one pass per batch."""
    reads_denoiser = in_denoiser(pipe, next(iter(modules)))
    for concept in concepts:
        if not reads_denoiser and not concept.prompts:
            raise ValueError(f"concept {concept.name!r} has no prompts, which the text-encoder module {next(iter(modules))!r} reads")
    prompts = [p for c in concepts for p in (c.prompts or ("",) * len(c))]
    if reads_denoiser:  # each concept's own seeded noise
        noisy, t = zip(*(model_inputs(pipe, c.images, len(c), timestep, seed) for c in concepts))
        noisy, t = torch.cat(noisy), torch.cat(t)
    pieces: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    for start in range(0, len(prompts), batch_size):
        rows = slice(start, start + batch_size)
        if reads_denoiser:
            conditioning = _conditioning(pipe, prompts[rows])
            kept = _forward_until(modules, lambda: predict(pipe, noisy[rows], t[rows], conditioning))
        else:
            kept = _forward_until(modules, lambda: encode_prompts(pipe, prompts[rows]))
        for name in modules:
            pieces[name].append(kept[name].cpu())
    stacked = {name: torch.cat(parts) for name, parts in pieces.items()}
    found, offset = {}, 0
    for concept in concepts:
        found[concept.name] = {name: stacked[name][offset: offset + len(concept)] for name in modules}
        offset += len(concept)
    return found


@torch.no_grad()
def layer_activations(
    pipe,
    concepts: Sequence[ConceptSet],
    modules: Sequence[str],
    timestep: int = 400,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
) -> dict[str, dict[str, torch.Tensor]]:
    """Pooled activations of several concepts at several modules, computed together.

    What the cache (if any) does not hold is computed in shared batches of `batch_size`
    examples, one forward pass per batch for all modules, stopped as soon as the last module
    asked for has run (activations at the mid block never run the up blocks). UNet modules see
    each concept's images through the VAE, noised to `timestep` with its own seeded noise, and
    its prompts as conditioning (see the module docstring for prompt-only concepts);
    text-encoder modules see the prompts; embeddings are returned as given. Each module is read
    at its first call in the pass (denoiser blocks and text-encoder layers run once).

    Returns:
        concept name -> module -> activations (n, channels), float32 on the CPU.

    Raises:
        ValueError: an unknown module (listing what exists), two concepts of one name, a concept
            without what a module needs, or NaN/inf activations.
    """
    modules = list(dict.fromkeys(modules))
    layers = {module: resolve_module(pipe, module) for module in modules}
    names = [c.name for c in concepts]
    if len(set(names)) != len(names):
        raise ValueError(f"concept names must be unique; repeated: {sorted({n for n in names if names.count(n) > 1})}")
    fingerprint = model_fingerprint(pipe) if cache_dir else ""
    found: dict[str, dict[str, torch.Tensor]] = {c.name: {} for c in concepts}
    cache: dict[tuple[str, str], Path] = {}
    missing: dict[str, list[ConceptSet]] = {}
    for concept in concepts:
        for module in modules:
            if concept.embeddings is not None:
                found[concept.name][module] = concept.embeddings.float()
                continue
            if cache_dir:
                key = hashlib.sha256(f"{fingerprint}|{module}|{concept.fingerprint()}|{timestep}|{seed}".encode()).hexdigest()[:20]
                path = cache[concept.name, module] = Path(cache_dir) / f"{concept.name}-{module}-{key}.safetensors"
                cached = _cached(path)
                if cached is not None:
                    found[concept.name][module] = cached
                    continue
            missing.setdefault(module, []).append(concept)
    for reads_denoiser in (True, False):
        group = {m: layers[m] for m in missing if in_denoiser(pipe, m) == reads_denoiser}
        if not group:
            continue
        needing = {c.name: c for m in group for c in missing[m]}
        computed = _compute(pipe, list(needing.values()), group, timestep, seed, batch_size)
        for module in group:
            for concept in missing[module]:
                activations = computed[concept.name][module].contiguous()
                if not torch.isfinite(activations).all():
                    raise ValueError(f"activations of {concept.name!r} at {module!r} contain NaN or inf")
                found[concept.name][module] = activations
                if (concept.name, module) in cache:
                    with atomic_path(cache[concept.name, module]) as tmp:
                        save_file({"activations": activations}, str(tmp))
    return found


def concept_activations(
    pipe, concept: ConceptSet, module: str, timestep: int = 400, seed: int = 0, cache_dir: str | Path | None = None
) -> torch.Tensor:
    """Pooled activations (n, channels) of `module` for the concept's examples.

    UNet modules see the images noised to `timestep` (seeded noise) with their prompts as
    conditioning; text-encoder modules see the prompts; embeddings are returned as given.
    Cached on disk under `cache_dir` (keyed by model, module, content, timestep and seed).
    See layer_activations for many concepts and modules at once.

    Raises:
        ValueError: an unknown module (listing what exists), or a concept without what the module needs.
    """
    return layer_activations(pipe, [concept], [module], timestep, seed, cache_dir)[concept.name][module]
