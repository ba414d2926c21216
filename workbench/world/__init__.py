"""ShapesWorld: coloured shapes with known factors, exact masks and captions (the ground truth)."""

from .comparison import comparison_inputs, drawn_object, scene_factors
from .captions import CaptionError, CaptionFactors, ObjectWords, WordRole, make_caption, parse_caption, word_roles
from .scenes import Scene, SceneObject, is_held_out, sample_scene, sample_scenes, scenes_frame, scenes_to_tensor
from .segmentation import BACKGROUND_LABEL, object_masks_by_color, segment_by_palette
from .vocabulary import BACKGROUNDS, COLORS, FACTOR_VALUES, SHAPES, SIZES, vocabulary

__all__ = [
    "BACKGROUND_LABEL",
    "BACKGROUNDS",
    "COLORS",
    "CaptionError",
    "CaptionFactors",
    "FACTOR_VALUES",
    "ObjectWords",
    "SHAPES",
    "SIZES",
    "Scene",
    "SceneObject",
    "comparison_inputs",
    "drawn_object",
    "scene_factors",
    "WordRole",
    "is_held_out",
    "make_caption",
    "object_masks_by_color",
    "parse_caption",
    "sample_scene",
    "sample_scenes",
    "scenes_frame",
    "scenes_to_tensor",
    "segment_by_palette",
    "vocabulary",
    "word_roles",
]
