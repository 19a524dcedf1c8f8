"""Training dcbench's embedded models from scratch (Lightning ``Trainer.fit``; 2 CPU cores are enough)."""

from dcbench.training.contrastive import ContrastiveTraining
from dcbench.training.denoiser import DenoiserTraining, train_digits

__all__ = ["ContrastiveTraining", "DenoiserTraining", "train_digits"]
