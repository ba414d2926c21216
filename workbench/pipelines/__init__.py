"""A user's pipeline and its words: loading (a folder or an embedded model by name), learned-word
files in every common format, LoRA files, ELITE-style mappers, and random-weight pipelines of the real
architectures for tests."""

from .elite import ELITECheckpointError, ELITEEncoder, GlobalMapping, injected_words, load_global_mapper
from .elite_local import LocalMapping, load_local_mapper, local_mapping
from .embeddings import EmbeddingFileError, LearnedWord, insert_embeddings, read_embeddings
from .loading import PipelineLoadError, load_pipeline
from .lora import LoraFileError, load_lora

__all__ = [
    "ELITECheckpointError",
    "ELITEEncoder",
    "EmbeddingFileError",
    "GlobalMapping",
    "LearnedWord",
    "LocalMapping",
    "LoraFileError",
    "PipelineLoadError",
    "injected_words",
    "insert_embeddings",
    "load_global_mapper",
    "load_local_mapper",
    "load_lora",
    "load_pipeline",
    "local_mapping",
    "read_embeddings",
]
