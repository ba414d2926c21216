"""Capture: attention maps (and activations) from a diffusers pipeline, without changing its output."""

from .activations import Activations
from .concept_maps import ConceptWordError
from .architectures import ARCHITECTURES, AttentionLayer, LayerSelectionError, attention_layers
from .localisation import UnsupervisedMasks, cluster_self_attention, unsupervised_masks
from .maps import AttentionMaps, PromptTokens
from .store import CaptureMemoryError
from .tokens import WordNotFoundError, WordSpan, align_words
from .tracing import Trace, trace

__all__ = [
    "Activations",
    "ARCHITECTURES",
    "AttentionLayer",
    "AttentionMaps",
    "CaptureMemoryError",
    "ConceptWordError",
    "LayerSelectionError",
    "PromptTokens",
    "Trace",
    "UnsupervisedMasks",
    "WordNotFoundError",
    "WordSpan",
    "align_words",
    "attention_layers",
    "trace",
    "cluster_self_attention",
    "unsupervised_masks",
]
