"""Pipelines, tokenizers and the ShapesWorld classifier, loaded one way: `load_pipeline`."""

from .classifier import ClassifierOutput, ShapesClassifier
from .embeddings import EmbeddingFileError, LearnedWord, insert_embeddings, read_embeddings
from .judge import QualityReport, judge_images
from .loading import PipelineLoadError, data_dir, embedded_path, load_pipeline
from .shapes_pipeline import ShapesModelConfig, ShapesPipeline, build_components
from .tokenizer import build_word_tokenizer

__all__ = [
    "ClassifierOutput",
    "EmbeddingFileError",
    "LearnedWord",
    "PipelineLoadError",
    "QualityReport",
    "ShapesClassifier",
    "ShapesModelConfig",
    "ShapesPipeline",
    "build_components",
    "build_word_tokenizer",
    "data_dir",
    "embedded_path",
    "insert_embeddings",
    "judge_images",
    "load_pipeline",
    "read_embeddings",
]
