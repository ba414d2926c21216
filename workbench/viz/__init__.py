"""Pictures and figures from results; nothing here loads a model."""

from .grid import mask_picture, scene_grid

__all__ = ["mask_picture", "scene_grid"]
