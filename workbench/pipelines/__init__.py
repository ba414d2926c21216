"""A user's pipeline and its words: loading (a folder or an embedded model by name), learned-word
files in every common format, ELITE-style mappers, and random-weight pipelines of the real
architectures for tests."""

from .elite import ELITECheckpointError, ELITEEncoder, GlobalMapping, injected_words, load_global_mapper
from .elite_local import LocalMapping, load_local_mapper, local_mapping
from .embeddings import EmbeddingFileError, LearnedWord, insert_embeddings, read_embeddings
from .loading import PipelineLoadError, load_pipeline

__all__ = [
    "ELITECheckpointError",
    "ELITEEncoder",
    "EmbeddingFileError",
    "GlobalMapping",
    "LearnedWord",
    "LocalMapping",
    "PipelineLoadError",
    "injected_words",
    "insert_embeddings",
    "load_global_mapper",
    "load_local_mapper",
    "load_pipeline",
    "local_mapping",
    "read_embeddings",
]
