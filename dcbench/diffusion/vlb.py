"""The exact variational bound terms of a model with learned variance (Nichol & Dhariwal 2021; DiT).

Such a model predicts eps and, per dimension, a value v in [-1, 1] that interpolates the log variance of
p(x_{t-1} | x_t) between the two natural choices: log sigma_t^2 = f log beta_t + (1 - f) log beta~_t with
f = (v + 1) / 2, beta~_t the variance of the posterior q(x_{t-1} | x_t, x_0). The bound's term at t is

- t > 0: KL( q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t) ), two Gaussians, in closed form;
- t = 0: -log p(x_0 | x_1), the Gaussian discretised to 256 bins over [-1, 1] (the decoder term).

Both in bits per dimension, averaged over dimensions, as improved-diffusion and DiT report them. Timesteps
are 0-based (t = 0 is the first noising step), as everywhere in dcbench.

For classification (Li et al. 2023, Table 5) the ``vlb`` objective scores a class by these terms instead of
the uniform l2 on eps, and ``l2+vlb`` by their sum (the hybrid loss DiT is trained with).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dcbench.diffusion.process import VPProcess

__all__ = ["OBJECTIVES", "discretized_gaussian_nll", "gaussian_kl", "vlb_terms"]

#: objectives that need the model's learned variance
OBJECTIVES = ("vlb", "l2+vlb")


def _schedule(process: VPProcess) -> dict[str, Tensor]:
    """beta_t, alpha-bar_{t-1} and the posterior variance beta~_t (float64), from alphas_cumprod alone."""
    a = process.alphas_cumprod.double()
    a_prev = torch.cat([a.new_ones(1), a[:-1]])
    beta = 1 - a / a_prev
    posterior = beta * (1 - a_prev) / (1 - a)
    # beta~_0 = 0: its log is clipped to beta~_1, as improved-diffusion does (the t = 0 term is the decoder's)
    log_posterior = torch.log(torch.cat([posterior[1:2], posterior[1:]]))
    return {"a": a, "a_prev": a_prev, "beta": beta, "log_posterior": log_posterior}


def gaussian_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) per element, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_nll(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """-log P(x) per element (nats) of a Gaussian discretised to 256 bins of width 2/255 over [-1, 1].

    The outermost bins extend to -inf and +inf. Uses the exact normal CDF.
    """
    centred = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = torch.special.ndtr(inv_std * (centred + 1 / 255))
    cdf_min = torch.special.ndtr(inv_std * (centred - 1 / 255))
    log_cdf_plus = torch.log(cdf_plus.clamp_min(1e-12))
    log_one_minus_cdf_min = torch.log((1 - cdf_min).clamp_min(1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp_min(1e-12))
    log_prob = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))
    return -log_prob


def vlb_terms(process: VPProcess, x0: Tensor, x_t: Tensor, t: Tensor, eps_hat: Tensor, v: Tensor) -> Tensor:
    """The bound's term at each sample's t (bits per dimension, one value per sample).

    ``eps_hat`` is the model's eps prediction and ``v`` its learned-range variance output (same shape as x0).
    Computed in float64: the KL of nearly equal Gaussians at large t is a small difference of large terms.
    """
    s = {k: val.to(x0.device)[t.long()].view(-1, *([1] * (x0.ndim - 1))) for k, val in _schedule(process).items()}
    x0, x_t, eps_hat, v = x0.double(), x_t.double(), eps_hat.double(), v.double()
    coef_x0 = s["beta"] * s["a_prev"].sqrt() / (1 - s["a"])
    coef_xt = (1 - s["a_prev"]) * (1 - s["beta"]).sqrt() / (1 - s["a"])
    true_mean = coef_x0 * x0 + coef_xt * x_t
    x0_hat = (x_t - (1 - s["a"]).sqrt() * eps_hat) / s["a"].sqrt()
    model_mean = coef_x0 * x0_hat + coef_xt * x_t
    frac = (v + 1) / 2
    model_logvar = frac * torch.log(s["beta"]) + (1 - frac) * s["log_posterior"]
    kl = gaussian_kl(true_mean, s["log_posterior"], model_mean, model_logvar)
    decoder = discretized_gaussian_nll(x0, model_mean, 0.5 * model_logvar)
    first = (t == 0).to(x0.device).view(-1, *([1] * (x0.ndim - 1)))
    terms = torch.where(first, decoder, kl)
    return terms.flatten(1).mean(1).float() / math.log(2.0)
