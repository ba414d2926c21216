"""Probe files: a TOML declaration of model, inputs and analyses, checked key by key.

    name = "concept-leakage"
    seed = 0
    [model]       pipeline, embeddings, device, dtype, steps, guidance_scale, height, width,
                  negative_prompt, use_resolution_binning
    [inputs]      prompts = [...] (masks = "folder" or unsupervised_regions = true)
                  or  scenes = 8, objects = 2, split = "test"
    [attention]   layers, per_step, concepts, maps (trace + overlap + leakage; concept maps)
    [primary_auxiliary] encoder, vision, mapper_hidden, images, image_folder, embeddings,
                  labels, masks, template   (which learned word carries what)
    [tcav]        target, concepts, layers, examples, random_runs, random_pool, explained,
                  timestep, method, alpha  (sources: see probes/sources.py)
    [diff]        against   (the model compared word by word with others: folders, "lora:FILE")
    [projection]  bank, metric, neighbors

A section that is present runs; its absent keys take the defaults below (an absent
`guidance_scale`, `height` or `width` is the pipeline's own). An unknown key or a value of the
wrong type is an error naming the file, the line, the key and what is accepted. What depends on
the model (files, whether a section can run on it) is checked by the runner, also before
anything is written.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ProbeError(ValueError):
    """A probe file that cannot be run as written."""


REQUIRED = object()  # a key without a default
DTYPES = ("float32", "float16", "bfloat16")

# section -> key -> (accepted types, default, what it means); a default of None means unset
# (the pipeline's own value, or no such input).
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any, str]]] = {
    "": {
        "name": ((str,), REQUIRED, "a short name for the probe"),
        "description": ((str,), "", "what question the probe answers"),
        "seed": ((int,), 0, "seed for scenes and generation"),
    },
    "model": {
        "pipeline": ((str,), "shapes", '"shapes" or the folder of a diffusers pipeline'),
        "embeddings": ((list,), [], "learned-word files inserted before the run (diffusers, A1111, kohya)"),
        "device": ((str,), "cpu", '"cpu" or "cuda"'),
        "dtype": ((str,), "float32", '"float32", "float16" or "bfloat16"'),
        "steps": ((int,), 20, "denoising steps"),
        "guidance_scale": ((int, float), None, "classifier-free guidance scale (default: the pipeline's own)"),
        "height": ((int,), None, "image height in pixels (default: the pipeline's own)"),
        "width": ((int,), None, "image width in pixels (default: the pipeline's own)"),
        "negative_prompt": ((str,), None, "the negative prompt of every generation"),
        "use_resolution_binning": ((bool,), None, "PixArt and Sana, [attention]'s generations: at the nearest size the model was "
                                   "trained at, then resized to height x width (default: the pipeline's own, true)"),
    },
    "inputs": {
        "prompts": ((list,), [], "prompts to generate (any model)"),
        "masks": ((str,), None, "folder of region masks named <prompt>_<region>.png, for leakage on your prompts"),
        "unsupervised_regions": ((bool,), False, "find regions without labels (self-attention clusters, as ConceptExpress) for leakage"),
        "scenes": ((int,), 0, "number of held-out ShapesWorld scenes whose captions are used"),
        "objects": ((int,), 2, "objects per ShapesWorld scene (1 or 2)"),
        "split": ((str,), "test", '"train" or "test" (held-out factor combinations)'),
    },
    "attention": {
        "layers": ((str, list), "all", 'cross-attention layers: "all", short names ("up.1") or module paths'),
        "per_step": ((bool,), False, "keep each denoising step's maps"),
        "concepts": ((list,), [], "words (in the prompts or not) whose concept maps in attention-output space to compute (joint-attention transformers: SD3, Flux, shapes-transformer)"),
        "maps": ((str,), "raw", '"raw" (the prompt words\' attention) or "output" (the concept maps of `concepts`) to score and show'),
    },
    "primary_auxiliary": {
        "encoder": ((str,), "shapes", '"shapes", the folder of a saved word encoder, or "elite:PATH/global_mapper.pt"'),
        "vision": ((str,), None, "with an ELITE encoder: the folder of its CLIP vision model (save_pretrained)"),
        "mapper_hidden": ((int,), 1024, "with an ELITE encoder: the width of its mapping MLPs (ELITE: 1024)"),
        "images": ((int,), 40, "one-object ShapesWorld scenes to encode (at least 20)"),
        "image_folder": ((str,), None, "a folder of your images to encode, instead of ShapesWorld scenes"),
        "embeddings": ((list,), [], "learned-word files, one example each, as the words instead of an encoder"),
        "labels": ((str,), None, "a CSV or Parquet table of factor labels, one row per example (files in name order)"),
        "masks": ((str,), None, "a folder of the drawn object's mask in each generated image, <index>.png"),
        "template": ((str,), "a S*", "the prompt the learned words are injected into"),
    },
    "tcav": {
        "target": ((str,), "color=red", '"FILE.py:FUNCTION" (decoded x0_hat -> (n,)); on ShapesWorld also a classifier class "head=class"'),
        "concepts": ((list,), ["color=red", "color=blue"], '"images:FOLDER", "prompts:FILE"; on ShapesWorld also queries such as "color=red"'),
        "layers": ((list,), None, "modules of the denoiser or text encoder(s) (default: three denoiser blocks, early, middle, late)"),
        "examples": ((int,), 30, "examples per random set (and per ShapesWorld concept)"),
        "random_runs": ((int,), 10, "random concept sets"),
        "random_pool": ((str,), None, '"images:FOLDER" or "prompts:FILE" the random sets are drawn from (default: ShapesWorld scenes)'),
        "explained": ((str,), None, '"images:FOLDER" or "prompts:FILE": the inputs explained (default: ShapesWorld scenes of the target class)'),
        "inputs": ((int,), 30, "explained ShapesWorld scenes of the target class"),
        "timestep": ((int,), 400, "noise level at which x0-hat is read"),
        "method": ((str,), "sgd", '"sgd", "logistic" or "mean_difference"'),
        "alpha": ((int, float), 0.05, "significance level before Bonferroni"),
    },
    "diff": {
        "against": ((list,), REQUIRED, 'models to compare with [model], word by word: pipeline folders or names, or "lora:FILE" ([model] with that LoRA)'),
    },
    "projection": {
        "bank": ((str,), "vocabulary", '"vocabulary" (token embeddings) or "learned-words" (needs [primary_auxiliary])'),
        "metric": ((str,), "cosine", '"cosine" or "euclidean"'),
        "neighbors": ((int,), 15, "UMAP n_neighbors"),
    },
}
ANALYSES = ("attention", "primary_auxiliary", "tcav", "diff", "projection")
CHOICES = {
    ("inputs", "split"): ("train", "test"),
    ("attention", "maps"): ("raw", "output"),
    ("model", "dtype"): DTYPES,
    ("tcav", "method"): ("sgd", "logistic", "mean_difference"),
    ("projection", "bank"): ("vocabulary", "learned-words"),
    ("projection", "metric"): ("cosine", "euclidean"),
}


@dataclass(frozen=True)
class Probe:
    """A checked probe: the settings of every section (defaults filled in)."""

    name: str
    description: str
    seed: int
    model: dict[str, Any]
    inputs: dict[str, Any]
    analyses: dict[str, dict[str, Any]]  # only the sections present, in run order
    source: str = field(default="", compare=False)
    text: str = field(default="", compare=False, repr=False)  # the TOML as written

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "seed": self.seed, "model": self.model, "inputs": self.inputs, **self.analyses}

    def fingerprint(self) -> str:
        """Changes when any setting changes (the run directory checks it before resuming)."""
        return hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:16]


def _line_of(text: str, section: str, key: str) -> int | None:
    """The 1-based line where `key` is set in `[section]` ("" = top level), if found."""
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"\s*\[([^\[\]]+)\]\s*(#.*)?$", line)
        if header:
            current = header.group(1).strip()
        elif current == section and re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return None


def _where(path: str, text: str, section: str, key: str | None = None) -> str:
    line = _line_of(text, section, key) if key else None
    if line is None and section:
        line = _line_of_header(text, section)
    return f"{path}" + (f", line {line}" if line else "")


def _line_of_header(text: str, section: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"\s*\[{re.escape(section)}\]", line):
            return number
    return None


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}
    return " or ".join(names[t] for t in types)


def _check_section(path: str, text: str, section: str, values: dict[str, Any]) -> dict[str, Any]:
    schema = SCHEMA[section]
    label = f"[{section}]" if section else "the top level"
    checked = {}
    for key, value in values.items():
        if key not in schema:
            raise ProbeError(
                f"{_where(path, text, section, key)}: unknown key {key!r} in {label}; accepted keys: {', '.join(schema)}"
            )
        types, _, meaning = schema[key]
        wrong = isinstance(value, bool) and bool not in types  # TOML true is not an integer here
        if wrong or not isinstance(value, types):
            raise ProbeError(
                f"{_where(path, text, section, key)}: {label} {key} must be {_type_names(types)} ({meaning}), "
                f"got {value!r}"
            )
        if (section, key) in CHOICES and value not in CHOICES[(section, key)]:
            raise ProbeError(
                f"{_where(path, text, section, key)}: {label} {key} = {value!r}; expected one of {', '.join(CHOICES[(section, key)])}"
            )
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise ProbeError(f"{_where(path, text, section, key)}: {label} {key} must be a list of strings, got {value!r}")
        checked[key] = value
    for key, (_, default, meaning) in schema.items():
        if key not in checked:
            if default is REQUIRED:
                raise ProbeError(f"{path}: {label} needs {key!r} ({meaning})")
            checked[key] = default
    return checked


def parse_probe(text: str, path: str = "<probe>") -> Probe:
    """Check a probe's TOML text (see the module docstring); `path` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProbeError(f"{path}: not valid TOML: {error}") from None
    top = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    sections = {k: v for k, v in raw.items() if isinstance(v, dict)}
    for name in sections:
        if name not in SCHEMA or name == "":
            raise ProbeError(
                f"{_where(path, text, name)}: unknown section [{name}]; accepted sections: "
                + ", ".join(f"[{s}]" for s in SCHEMA if s)
            )
    head = _check_section(path, text, "", top)
    model = _check_section(path, text, "model", sections.get("model", {}))
    inputs = _check_section(path, text, "inputs", sections.get("inputs", {}))
    analyses = {name: _check_section(path, text, name, sections[name]) for name in ANALYSES if name in sections}
    if not analyses:
        raise ProbeError(f"{path}: no analysis to run; add at least one of " + ", ".join(f"[{a}]" for a in ANALYSES))
    if "diff" in analyses and not analyses["diff"]["against"]:
        raise ProbeError(f"{_where(path, text, 'diff', 'against')}: [diff] against needs at least one model to compare with")
    for section in ("attention", "diff"):
        if section in analyses and not inputs["prompts"] and inputs["scenes"] < 1:
            raise ProbeError(f"{_where(path, text, 'inputs')}: [{section}] needs [inputs] prompts = [...] or scenes = N (N >= 1)")
    attention = analyses.get("attention", {})
    if attention.get("maps") == "output" and not attention.get("concepts"):
        raise ProbeError(f"{_where(path, text, 'attention', 'maps')}: [attention] maps = \"output\" scores concept maps; name them with concepts = [...]")
    if inputs["objects"] not in (1, 2):
        raise ProbeError(f"{_where(path, text, 'inputs', 'objects')}: [inputs] objects must be 1 or 2, got {inputs['objects']}")
    if analyses.get("projection", {}).get("bank") == "learned-words" and "primary_auxiliary" not in analyses:
        raise ProbeError(f"{_where(path, text, 'projection', 'bank')}: bank = \"learned-words\" needs a [primary_auxiliary] section")
    if inputs["prompts"] and inputs["scenes"]:
        raise ProbeError(f"{_where(path, text, 'inputs', 'scenes')}: [inputs] takes prompts = [...] or scenes = N, not both")
    if inputs["masks"] is not None and inputs["unsupervised_regions"]:
        raise ProbeError(f"{_where(path, text, 'inputs', 'unsupervised_regions')}: [inputs] takes masks or unsupervised_regions, not both")
    if inputs["masks"] is not None and not inputs["prompts"]:
        raise ProbeError(f"{_where(path, text, 'inputs', 'masks')}: [inputs] masks are regions of your prompts' images; give prompts = [...] too")
    for key in ("height", "width", "steps"):
        if model[key] is not None and model[key] < 1:
            raise ProbeError(f"{_where(path, text, 'model', key)}: [model] {key} must be at least 1, got {model[key]}")
    return Probe(name=head["name"], description=head["description"], seed=head["seed"], model=model, inputs=inputs, analyses=analyses,
                 source=path, text=text)


def load_probe(path: str | Path) -> Probe:
    """Read and check a probe file.

    Raises:
        FileNotFoundError: the file does not exist (named).
        ProbeError: unknown key or section, wrong type (names the line and accepted keys).
    """
    return parse_probe(read_toml_text(path, "probe", ProbeError, "; probes live in probes/*.toml"), str(path))


def read_toml_text(path: str | Path, kind: str, error: type[ValueError], hint: str = "") -> str:
    """The text of a `kind` file ("probe", "sweep"), or one clear error naming it.

    Raises:
        FileNotFoundError: the file does not exist (`hint` follows the message).
        error: the file is not UTF-8 text.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} file {path} does not exist{hint}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file (expected a TOML {kind} in UTF-8)") from None
