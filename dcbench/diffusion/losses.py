"""Per-sample denoising errors: the Monte Carlo terms of the ELBO the classifier compares."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOSSES", "denoising_error"]

LOSSES = ("l2", "l1", "huber")


def denoising_error(prediction: Tensor, target: Tensor, loss: str = "l2") -> Tensor:
    """Error per sample, averaged over every non-batch dimension (as the reference does)."""
    prediction, target = prediction.float(), target.float()
    if loss == "l2":
        err = F.mse_loss(prediction, target, reduction="none")
    elif loss == "l1":
        err = F.l1_loss(prediction, target, reduction="none")
    elif loss == "huber":
        err = F.huber_loss(prediction, target, reduction="none")
    else:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    return err.flatten(1).mean(1)
