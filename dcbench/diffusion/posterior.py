"""p(c|x) from denoising errors when candidates were pruned along the way.

Eq. 6 of Li et al. is p(c|x) = softmax(-error / tau) over classes. With pruning, the errors of a class
dropped after 10 samples and of a survivor averaged over 50 samples are not comparable: they cover
different timesteps, and the mean error over a set of timesteps depends strongly on which timesteps it
holds. So the probability is built stage by stage, each stage comparing only errors over the samples
every candidate still in the race shares:

    stage s: the classes present share out the mass left, softmax(-e_s / tau); the classes that leave
    after stage s keep their share, the survivors pass theirs on to stage s + 1.

Without pruning this is exactly softmax(-error / tau). A class dropped at stage s has a larger shared
error than every survivor, so it never gets more probability than the predicted class.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["stagewise_probs"]


def stagewise_probs(stage_errors: Tensor, temperature: float) -> Tensor:
    """Class probabilities from per-stage class errors.

    Args:
        stage_errors: (..., n_stages, n_classes); row s holds each class's error over the samples shared
            by every class still present at stage s, and ``inf`` for classes already gone. Present sets
            are nested: a class absent at stage s is absent at every later stage.
        temperature: tau.

    Returns:
        (..., n_classes) probabilities summing to one.
    """
    stage_errors = stage_errors.double()
    n_stages = stage_errors.shape[-2]
    probs = torch.zeros_like(stage_errors[..., 0, :])
    mass = torch.ones_like(probs[..., :1])
    for s in range(n_stages):
        share = mass * torch.softmax(-stage_errors[..., s, :] / temperature, dim=-1)
        share = torch.nan_to_num(share)  # a stage nobody reached (all inf) gives nothing
        if s + 1 < n_stages:
            stays = torch.isfinite(stage_errors[..., s + 1, :])
            probs = probs + torch.where(stays, 0.0, share)
            mass = torch.where(stays, share, 0.0).sum(-1, keepdim=True)
        else:
            probs = probs + share
    return probs
