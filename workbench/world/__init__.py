"""ShapesWorld: coloured shapes with known factors, exact masks and captions (the ground truth)."""

from .captions import CaptionError, CaptionFactors, ObjectWords, make_caption, parse_caption
from .scenes import Scene, SceneObject, is_held_out, sample_scene, sample_scenes, scenes_frame, scenes_to_tensor
from .vocabulary import BACKGROUNDS, COLORS, FACTOR_VALUES, SHAPES, SIZES, vocabulary

__all__ = [
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
    "is_held_out",
    "make_caption",
    "parse_caption",
    "sample_scene",
    "sample_scenes",
    "scenes_frame",
    "scenes_to_tensor",
    "vocabulary",
]
