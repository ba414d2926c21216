"""concept-workbench: see what learned words and concepts do inside text-to-image diffusion models."""

from .capture import AttentionMaps, trace
from .models.classifier import ShapesClassifier
from .models.loading import PipelineLoadError, load_pipeline
from .models.shapes_pipeline import ShapesPipeline
from .models.word_encoder import WordEncoder, load_word_encoder
from .world.scenes import Scene, sample_scenes

__version__ = "0.1.0"

__all__ = [
    "AttentionMaps",
    "PipelineLoadError",
    "Scene",
    "ShapesClassifier",
    "ShapesPipeline",
    "load_pipeline",
    "sample_scenes",
    "trace",
    "WordEncoder",
    "load_word_encoder",
]
