"""ShapesWorld's models: the text-to-image pipeline, its word tokenizer, the classifier that
judges generations (and is a TCAV target), and the ELITE-style word encoder."""

from .classifier import ClassifierOutput, ShapesClassifier, load_classifier
from .judge import QualityReport, judge_images
from .pipeline import DEFAULT_GUIDANCE_SCALE, ShapesModelConfig, ShapesPipeline, ShapesTransformerPipeline, build_components
from .tokenizer import build_word_tokenizer
from .word_encoder import WordEncoder, WordEncoderConfig, load_word_encoder

__all__ = [
    "ClassifierOutput",
    "DEFAULT_GUIDANCE_SCALE",
    "QualityReport",
    "ShapesClassifier",
    "ShapesModelConfig",
    "ShapesPipeline",
    "ShapesTransformerPipeline",
    "WordEncoder",
    "WordEncoderConfig",
    "build_components",
    "build_word_tokenizer",
    "judge_images",
    "load_classifier",
    "load_word_encoder",
]
