"""Reading a user's tensor files (safetensors, or .pt/.bin/.ckpt through torch's weights-only
loader) without ever unpickling code, with errors that name the file."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file


def read_tensor_file(path: str | Path, error: type[Exception], what: str) -> object:
    """The contents of a safetensors file (a dict of tensors) or of a torch file loaded with
    `weights_only=True` (plain containers of tensors only).

    Args:
        error: the exception class raised, e.g. EmbeddingFileError.
        what: what the file should hold, for messages ("an embedding file").

    Raises:
        FileNotFoundError: no such file.
        error: a file that is damaged, not of its format, or that needs full unpickling (which
            could run code: it is refused, never executed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected {what}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as cause:
            raise error(f"{path}: not a readable safetensors file ({_first_line(cause)}); expected {what}") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as cause:
        blocked = re.search(r"unsupported GLOBAL ([\w.]+)|Unsupported global: GLOBAL ([\w.]+)", str(cause))
        found = f" (it refers to {next(filter(None, blocked.groups()))})" if blocked else ""
        raise error(f"{path} holds Python objects that only full unpickling could load{found}, which can run arbitrary "
                    "code; it was not executed. Re-save it as plain tensors (or safetensors) in a trusted environment.") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError) as cause:
        raise error(f"{path}: not a readable torch file ({_first_line(cause)}); expected {what}") from None


def _first_line(cause: BaseException) -> str:
    text = str(cause).strip()
    return f"{type(cause).__name__}: {text.splitlines()[0]}" if text else type(cause).__name__
