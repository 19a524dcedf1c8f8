"""The forward (noising) process and the regression target, in one place for every backbone.

Backbones return whatever their network predicts (``epsilon``, ``v_prediction`` or ``sample``, as
named by the diffusers scheduler config); everything else about the diffusion lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["PREDICTION_TYPES", "VPProcess"]

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


@dataclass(frozen=True)
class VPProcess:
    """Variance-preserving DDPM process: x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps, a_t = alphas_cumprod[t].

    ``alphas_cumprod`` is kept in float32 on purpose: in fp16 the products near t = T round to
    zero and neighbouring timesteps become identical, which would bias every error the classifier
    compares (the reference implementation casts it to fp16; we noise in float32 and only cast the
    network input).
    """

    alphas_cumprod: Tensor = field(repr=False)
    prediction_type: str = "epsilon"

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        object.__setattr__(self, "alphas_cumprod", self.alphas_cumprod.detach().to("cpu", torch.float32))

    @classmethod
    def from_scheduler(cls, scheduler: Any) -> VPProcess:
        """Build from any diffusers DDPM-family scheduler (DDPM, DDIM, PNDM, Euler, ...)."""
        if not hasattr(scheduler, "alphas_cumprod"):
            raise TypeError(f"{type(scheduler).__name__} has no alphas_cumprod: only variance-preserving "
                            "(DDPM-family) schedulers are supported by VPProcess")
        return cls(torch.as_tensor(scheduler.alphas_cumprod), scheduler.config.get("prediction_type", "epsilon"))

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.numel())

    def _coefficients(self, t: Tensor, ndim: int, device: torch.device) -> tuple[Tensor, Tensor]:
        a = self.alphas_cumprod.to(device)[t.to(device).long()]
        shape = (-1,) + (1,) * (ndim - 1)
        return a.sqrt().view(shape), (1 - a).sqrt().view(shape)

    def add_noise(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """x_t in float32, whatever the dtype of the inputs."""
        sa, s1a = self._coefficients(t, x0.ndim, x0.device)
        return sa * x0.float() + s1a * eps.float()

    def target(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """What the network is trained to predict (for training in this parameterisation)."""
        if self.prediction_type == "epsilon":
            return eps
        if self.prediction_type == "sample":
            return x0
        sa, s1a = self._coefficients(t, x0.ndim, x0.device)
        return sa * eps.float() - s1a * x0.float()

    def to_epsilon(self, output: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Convert a network output to an epsilon estimate (float32), so errors compare across models."""
        output = output.float()
        if self.prediction_type == "epsilon":
            return output
        sa, s1a = self._coefficients(t, x_t.ndim, x_t.device)
        if self.prediction_type == "v_prediction":
            # v = sqrt(a) eps - sqrt(1-a) x0 and x_t = sqrt(a) x0 + sqrt(1-a) eps  =>  eps = sqrt(a) v + sqrt(1-a) x_t
            return sa * output + s1a * x_t.float()
        # sample prediction: eps = (x_t - sqrt(a) x0_hat) / sqrt(1 - a)
        return (x_t.float() - sa * output) / s1a.clamp_min(1e-8)
