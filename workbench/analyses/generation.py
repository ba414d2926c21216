"""What a pipeline's own `__call__` takes and defaults to, so analyses generate as the pipeline
would (Stable Diffusion's guidance 7.5, SDXL's 5.0, each model's own size) unless told."""

from __future__ import annotations

import inspect
from typing import Any


def _parameters(pipe) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(type(pipe).__call__).parameters)


def accepts(pipe, argument: str) -> bool:
    """Whether the pipeline's `__call__` takes `argument` (e.g. "negative_prompt")."""
    return argument in _parameters(pipe)


def pipeline_default(pipe, argument: str) -> Any:
    """The default of `argument` in the pipeline's `__call__` (None when it has none)."""
    parameter = _parameters(pipe).get(argument)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


def generation_options(pipe, **options: Any) -> dict[str, Any]:
    """The options given (None values dropped), guidance_scale filled in with the pipeline's
    own default.

    Raises:
        ValueError: an option the pipeline's `__call__` does not take (names the pipeline).
    """
    given = {k: v for k, v in options.items() if v is not None}
    refused = [k for k in given if not accepts(pipe, k)]
    if refused:
        raise ValueError(f"{type(pipe).__name__} does not take {', '.join(refused)}; leave {'it' if len(refused) == 1 else 'them'} unset for this pipeline")
    if "guidance_scale" not in given and accepts(pipe, "guidance_scale"):
        given["guidance_scale"] = pipeline_default(pipe, "guidance_scale")
    return given


def pipeline_prompts(pipe, prompts: list[str]) -> list[str]:
    """The prompts as the pipeline must be given them for every vector of a multi-vector
    learned word to reach the model: as written where the pipeline expands learned words
    itself (Stable Diffusion's `maybe_convert_prompt`), expanded ("S* S*_1 ...") where it does
    not (SD3, Flux, PixArt, Sana)."""
    if hasattr(pipe, "maybe_convert_prompt"):
        return list(prompts)
    from ..capture.tokens import expand_slots

    return [expand_slots(prompt, pipe.tokenizer) for prompt in prompts]
