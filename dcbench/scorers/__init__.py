"""Scorers: LightningModules that turn images into per-class probabilities, one record per image."""

from dcbench.scorers import clip, diffusion_classifier, sd_features, synthetic_data  # noqa: F401  (registers the built-ins)
from dcbench.scorers.base import Scorer
from dcbench.scorers.clip import CLIPScorer
from dcbench.scorers.diffusion_classifier import DiffusionClassifier
from dcbench.scorers.sd_features import SDFeaturesScorer
from dcbench.scorers.synthetic_data import SyntheticDataScorer

__all__ = ["CLIPScorer", "DiffusionClassifier", "SDFeaturesScorer", "Scorer", "SyntheticDataScorer"]
