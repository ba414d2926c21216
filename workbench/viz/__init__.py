"""Pictures and figures from results; nothing here loads a model."""

from .dashboard import Section, render_dashboard, write_dashboard
from .figures import concept_depth_figure, heat_map_figure, matrix_figure, projection_figure, tcav_figure
from .grid import mask_picture, scene_grid

__all__ = [
    "Section",
    "concept_depth_figure",
    "heat_map_figure",
    "mask_picture",
    "matrix_figure",
    "projection_figure",
    "render_dashboard",
    "scene_grid",
    "tcav_figure",
    "write_dashboard",
]
