"""ShapesWorld, the embedded default and test bench: coloured shapes with known factors, exact
masks and captions (the ground truth), the small models trained on it (`models`), their
trainers (`training`), and what it gives the analyses (regions, concepts, comparison inputs).
It uses the product and registers itself as an embedded world (`embedded.py`); the product
never imports it."""

from .captions import CaptionError, CaptionFactors, ObjectWords, WordRole, make_caption, parse_caption, word_roles
from .comparison import comparison_inputs, drawn_object, scene_factors
from .concepts import classifier_target, from_query, parse_query, random_sets
from .models import judge_images, load_classifier, load_word_encoder
from .regions import caption_regions
from .scenes import Scene, SceneObject, is_held_out, sample_scene, sample_scenes, scenes_frame, scenes_to_tensor
from .segmentation import BACKGROUND_LABEL, color_present, object_masks_by_color, segment_by_palette
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
    "WordRole",
    "caption_regions",
    "classifier_target",
    "color_present",
    "comparison_inputs",
    "drawn_object",
    "from_query",
    "is_held_out",
    "judge_images",
    "load_classifier",
    "load_word_encoder",
    "make_caption",
    "object_masks_by_color",
    "parse_caption",
    "parse_query",
    "random_sets",
    "sample_scene",
    "sample_scenes",
    "scene_factors",
    "scenes_frame",
    "scenes_to_tensor",
    "segment_by_palette",
    "vocabulary",
    "word_roles",
]
