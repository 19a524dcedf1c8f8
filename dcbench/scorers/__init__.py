"""Scorers: LightningModules that turn images into per-class probabilities, one record per image."""

from dcbench.scorers import diffusion_classifier  # noqa: F401  (registers the built-ins)
from dcbench.scorers.base import Scorer
from dcbench.scorers.diffusion_classifier import DiffusionClassifier

__all__ = ["DiffusionClassifier", "Scorer"]
