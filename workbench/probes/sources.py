"""What a probe's [tcav] section names, turned into concept sets and a target, on any model.

    concepts = ["images:concepts/striped", "prompts:concepts/cats.txt"]
    random_pool = "prompts:pool.txt"        # random sets are drawn from it
    explained = "images:photos/"            # the inputs whose predictions are explained
    target = "my_target.py:redness"         # a function: decoded x0_hat (n, 3, y, x) -> (n,)

`images:FOLDER` is a folder of pictures (any mode and size, resized and centre-cropped to
the model's resolution); `prompts:FILE` a text file with one prompt per line. A target file is
the user's own Python code, run as a probe names it (as a training config names a model
class): `FILE.py:NAME` imports FILE.py and calls NAME, which may also be a factory returning
the function when it is called without arguments. On the embedded ShapesWorld model the
section keeps its factor queries ("color=red") and classifier classes as well.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Callable

from ..concepts import ConceptSet

SOURCE_KINDS = ("images", "prompts")


def is_source(text: str) -> bool:
    """Whether `text` names a concept source ("images:..." or "prompts:...")."""
    return text.partition(":")[0] in SOURCE_KINDS


def read_source(text: str, size: int) -> ConceptSet:
    """The concept set a source names, called by its path.

    Raises:
        ValueError: an unknown kind, a missing folder or file, fewer than two examples.
    """
    kind, _, where = text.partition(":")
    if kind not in SOURCE_KINDS or not where:
        raise ValueError(f"{text!r} is not a concept source; expected images:FOLDER or prompts:FILE")
    path = Path(where)
    if kind == "images":
        return ConceptSet.from_folder(where, path, size)
    if not path.is_file():
        raise ValueError(f"{text!r}: {path} is not a file of prompts (one per line)")
    prompts = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(prompts) < 2:
        raise ValueError(f"{text!r}: {path} holds {len(prompts)} prompt(s); a concept needs at least 2, one per line")
    return ConceptSet(where, prompts=prompts)


def load_target(text: str) -> Callable:
    """The function a target names as FILE.py:NAME (a factory without arguments is called).

    Raises:
        ValueError: not FILE.py:NAME, a missing file, a file that fails to import (the error
            is named), or NAME missing or not callable.
    """
    file, sep, name = text.rpartition(":")
    if not sep or not file.endswith(".py") or not name.isidentifier():
        raise ValueError(f"target {text!r}: expected FILE.py:FUNCTION, a function of the decoded x0_hat (n, 3, y, x) -> (n,)")
    path = Path(file)
    if not path.is_file():
        raise ValueError(f"target {text!r}: {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"probe_target_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's file: say which and why, not a traceback from importlib
        raise ValueError(f"target {text!r}: importing {path} failed: {type(error).__name__}: {error}") from None
    found = getattr(module, name, None)
    if not callable(found):
        raise ValueError(f"target {text!r}: {path} has no function {name!r}")
    parameters = [p for p in inspect.signature(found).parameters.values() if p.default is inspect.Parameter.empty]
    return found() if not parameters else found
