"""Pictures and figures from results; nothing here loads a model."""

from .aggregates import leakage_figure, localisation_figure
from .dashboard import Section, render_dashboard, write_dashboard
from .figures import concept_depth_figure, matrix_figure, projection_figure, tcav_figure
from .heat_maps import default_word, gallery_figure, heat_map_figure
from .model_diff import diff_figure, erasure_figure, word_change_figure
from .grid import mask_picture, scene_grid

__all__ = [
    "Section",
    "concept_depth_figure",
    "default_word",
    "diff_figure",
    "erasure_figure",
    "gallery_figure",
    "heat_map_figure",
    "leakage_figure",
    "localisation_figure",
    "mask_picture",
    "matrix_figure",
    "projection_figure",
    "render_dashboard",
    "scene_grid",
    "tcav_figure",
    "word_change_figure",
    "write_dashboard",
]
