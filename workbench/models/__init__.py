"""Pipelines, tokenizers and the ShapesWorld classifier, loaded one way: `load_pipeline`."""

from .classifier import ClassifierOutput, ShapesClassifier
from .elite import ELITECheckpointError, GlobalMapping, injected_words, load_global_mapper
from .elite_local import LocalMapping, load_local_mapper, local_mapping
from .embeddings import EmbeddingFileError, LearnedWord, insert_embeddings, read_embeddings
from .judge import QualityReport, judge_images
from .loading import PipelineLoadError, data_dir, embedded_path, load_pipeline
from .shapes_pipeline import ShapesModelConfig, ShapesPipeline, build_components
from .tokenizer import build_word_tokenizer
from .word_encoder import WordEncoder, WordEncoderConfig, load_word_encoder

__all__ = [
    "ClassifierOutput",
    "ELITECheckpointError",
    "EmbeddingFileError",
    "GlobalMapping",
    "LearnedWord",
    "LocalMapping",
    "PipelineLoadError",
    "QualityReport",
    "ShapesClassifier",
    "ShapesModelConfig",
    "ShapesPipeline",
    "build_components",
    "build_word_tokenizer",
    "data_dir",
    "embedded_path",
    "injected_words",
    "insert_embeddings",
    "judge_images",
    "load_global_mapper",
    "load_local_mapper",
    "load_pipeline",
    "local_mapping",
    "load_word_encoder",
    "read_embeddings",
    "WordEncoder",
    "WordEncoderConfig",
]
