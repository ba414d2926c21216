"""ShapesWorld's concepts for TCAV: sets of one-object scenes by factor query ("color=red"),
random sets of scenes, and its classifier's classes as targets."""

from __future__ import annotations

from typing import Callable

import numpy as np

from workbench.concepts import ConceptSet, classifier_logit

from .scenes import sample_scene, scenes_to_tensor
from .vocabulary import FACTOR_VALUES


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


def random_sets(n_sets: int, size: int, seed: int = 0, image_size: int = 32, prefix: str = "random") -> list[ConceptSet]:
    """n_sets random concept sets of one-object scenes, each drawn with its own seed, named
    prefix0, prefix1, ... (use another prefix for a second family: names must be unique in a run)."""
    return [from_query(f"{prefix}{r}", "", size, seed=seed * 10_007 + r + 1, image_size=image_size) for r in range(n_sets)]


def classifier_target(query: str) -> Callable:
    """x0_hat (n, 3, y, x) in [-1, 1] -> (n,): the embedded classifier's logit of one class,
    named as head=class ("color=red").

    Raises:
        ValueError: not exactly one head=class, or a value the world does not have.
    """
    from .models.classifier import load_classifier

    wanted = parse_query(query)
    if len(wanted) != 1:
        raise ValueError(f"target must name one classifier class as head=class (e.g. 'color=red') or a function as FILE.py:FUNCTION, got {query!r}")
    (head, value), = wanted.items()
    return classifier_logit(load_classifier(), head, value)
