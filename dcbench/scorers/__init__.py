"""Scorers: LightningModules that turn images into per-class probabilities, one record per image."""

from dcbench.scorers import (  # noqa: F401  (registers the built-ins)
    clip,
    diffusion_classifier,
    sd_features,
    synthetic_data,
    timm_classifier,
)
from dcbench.scorers.base import Scorer
from dcbench.scorers.clip import CLIPScorer
from dcbench.scorers.diffusion_classifier import DiffusionClassifier
from dcbench.scorers.sd_features import SDFeaturesScorer
from dcbench.scorers.synthetic_data import SyntheticDataScorer
from dcbench.scorers.timm_classifier import TimmClassifier

__all__ = ["CLIPScorer", "DiffusionClassifier", "SDFeaturesScorer", "Scorer", "SyntheticDataScorer", "TimmClassifier"]
