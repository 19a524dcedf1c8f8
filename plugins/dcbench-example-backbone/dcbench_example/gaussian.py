"""An analytic class-conditional denoiser: every class is a Gaussian in pixel space, so no weights are needed.

Model class c as x0 ~ N(mu_c, s^2 I). Under the VP process x_t = sqrt(a) x0 + sqrt(1 - a) eps the
posterior mean is exact::

    E[x0 | x_t, c] = mu_c + sqrt(a) s^2 / (a s^2 + 1 - a) * (x_t - sqrt(a) mu_c)

and the epsilon prediction follows as (x_t - sqrt(a) E[x0 | x_t, c]) / sqrt(1 - a). The Diffusion
Classifier over this backbone is a noise-averaged nearest-class-mean classifier: a useful baseline,
and a backbone that runs anywhere in milliseconds.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dcbench.backbones.base import Backbone, class_ids
from dcbench.data.labels import LabelSet
from dcbench.diffusion.process import VPProcess

__all__ = ["GaussianBackbone", "example_gaussian"]


class GaussianBackbone(Backbone):
    """Exact epsilon prediction for classes x0 ~ N(means[c], sigma^2 I).

    Args:
        means: class means, (num_classes, C, H, W), in the [-1, 1] pixel space the scorer feeds.
        sigma: the pooled per-pixel standard deviation s.
        process: the forward process (its ``alphas_cumprod`` is copied into a buffer).
        classes: class names, in the order of ``means``.
    """

    def __init__(self, means: Tensor, sigma: float, process: VPProcess, classes: list[str]) -> None:
        super().__init__()
        if process.prediction_type != "epsilon":
            raise ValueError(f"GaussianBackbone predicts epsilon, but the process says {process.prediction_type!r}")
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.process = process
        self.classes = classes
        self.sigma = float(sigma)
        self.image_channels, self.image_size = means.shape[1], means.shape[2]
        # Buffers, not attributes: they follow the module through .to(device) (and Lightning's placement).
        self.register_buffer("means", means.float(), persistent=False)
        self.register_buffer("alphas_cumprod", process.alphas_cumprod.clone(), persistent=False)

    def encode_images(self, images: Tensor) -> Tensor:
        return images  # pixel space: x0 is the image

    def encode_conditions(self, labels: LabelSet) -> Tensor:
        return class_ids(labels, self.classes, len(self.classes))

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        a = self.alphas_cumprod[t.long()].view(-1, 1, 1, 1)
        mu = self.means[cond.long()]
        s2 = self.sigma**2
        x_t = x_t.float()
        x0_hat = mu + (a.sqrt() * s2 / (a * s2 + 1 - a)) * (x_t - a.sqrt() * mu)
        return (x_t - a.sqrt() * x0_hat) / (1 - a).sqrt()


def _fit_digits() -> tuple[Tensor, float, list[str]]:
    """Class means and the pooled within-class standard deviation of the digits train split, in [-1, 1]."""
    from dcbench.data.digits import DigitsDataset
    from dcbench.data.transforms import model_input_transform

    dataset = DigitsDataset("train")
    transform = model_input_transform(None, 1)
    images, labels = zip(*(dataset.load(i) for i in range(len(dataset))), strict=True)
    x = torch.stack([transform(image) for image in images])  # (N, 1, 8, 8)
    y = torch.tensor(labels)
    means = torch.stack([x[y == c].mean(dim=0) for c in range(len(dataset.classes))])
    sigma = (x - means[y]).pow(2).mean().sqrt().item()
    return means, sigma, list(dataset.classes)


def example_gaussian(fit_on: str = "digits", sigma: float | None = None) -> GaussianBackbone:
    """Analytic per-class Gaussian denoiser fitted on the digits train split (example plugin, no weights).

    Args:
        fit_on: the data the class means are fitted on; only ``digits`` (its train split) is supported.
        sigma: the per-pixel standard deviation s of every class; None fits the pooled one.
    """
    from diffusers import DDPMScheduler

    from dcbench.embedded import DIGITS_SCHEDULER_CONFIG

    if fit_on != "digits":
        raise ValueError(f"example-gaussian can only be fitted on 'digits', not {fit_on!r}")
    means, fitted_sigma, classes = _fit_digits()
    process = VPProcess.from_scheduler(DDPMScheduler(**DIGITS_SCHEDULER_CONFIG))
    return GaussianBackbone(means, fitted_sigma if sigma is None else sigma, process, classes)
