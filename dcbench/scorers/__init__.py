"""Scorers: LightningModules that turn images into per-class probabilities, one record per image."""

from dcbench.scorers import clip, diffusion_classifier  # noqa: F401  (registers the built-ins)
from dcbench.scorers.base import Scorer
from dcbench.scorers.clip import CLIPScorer
from dcbench.scorers.diffusion_classifier import DiffusionClassifier

__all__ = ["CLIPScorer", "DiffusionClassifier", "Scorer"]
