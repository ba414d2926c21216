"""concept-workbench: see what learned words and concepts do inside text-to-image diffusion models.

The product: `trace` a pipeline's attention, `load_pipeline` a user's model (or an embedded
world's, "shapes"), and the subpackages capture, concepts, analyses, metrics, projection,
viz and probes. ShapesWorld, the embedded default, is `workbench.shapesworld`: it uses the
product, never the reverse.

The names below load on first use, so that `import workbench.metrics` or the command line's
--help do not pay for torch and diffusers.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from .version import __version__

_LAZY = {
    "AttentionMaps": ".capture",
    "trace": ".capture",
    "PipelineLoadError": ".pipelines.loading",
    "load_pipeline": ".pipelines.loading",
}

if TYPE_CHECKING:
    from .capture import AttentionMaps, trace
    from .pipelines.loading import PipelineLoadError, load_pipeline


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["AttentionMaps", "PipelineLoadError", "__version__", "load_pipeline", "trace"]
