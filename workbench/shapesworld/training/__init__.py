"""Trainers for the embedded ShapesWorld models; every write is atomic and training resumes."""

from .classifier import ClassifierTrainingConfig, train_classifier
from .diffusion import DiffusionTrainingConfig, train_diffusion

__all__ = ["ClassifierTrainingConfig", "DiffusionTrainingConfig", "train_classifier", "train_diffusion"]
