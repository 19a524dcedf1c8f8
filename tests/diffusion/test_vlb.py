"""The variational bound terms, checked against a hand computation on a 3-step process."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from dcbench.diffusion.process import VPProcess
from dcbench.diffusion.vlb import discretized_gaussian_nll, vlb_terms

BETAS = [0.1, 0.2, 0.3]
ALPHAS_CUMPROD = [0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.7]


def process() -> VPProcess:
    return VPProcess(torch.tensor(ALPHAS_CUMPROD))


def one(value: float) -> torch.Tensor:
    return torch.full((1, 1, 1, 1), value)


def hand_kl(t: int, x0: float, x_t: float, eps_hat: float, v: float) -> float:
    """KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t)) in bits, written out for one dimension (t >= 1)."""
    a, a_prev, beta = ALPHAS_CUMPROD[t], ALPHAS_CUMPROD[t - 1], BETAS[t]
    post_var = beta * (1 - a_prev) / (1 - a)
    mean_q = beta * math.sqrt(a_prev) / (1 - a) * x0 + (1 - a_prev) * math.sqrt(1 - beta) / (1 - a) * x_t
    x0_hat = (x_t - math.sqrt(1 - a) * eps_hat) / math.sqrt(a)
    mean_p = beta * math.sqrt(a_prev) / (1 - a) * x0_hat + (1 - a_prev) * math.sqrt(1 - beta) / (1 - a) * x_t
    f = (v + 1) / 2
    var_p = math.exp(f * math.log(beta) + (1 - f) * math.log(post_var))
    kl = 0.5 * (math.log(var_p / post_var) + post_var / var_p + (mean_q - mean_p) ** 2 / var_p - 1)
    return kl / math.log(2)


@pytest.mark.parametrize(("t", "x0", "x_t", "eps_hat", "v"),
                         [(2, 0.3, -0.2, 0.5, 0.0), (1, -0.7, 0.4, -1.2, 0.6), (2, 0.9, 0.9, 0.0, -1.0)])
def test_kl_terms_match_the_hand_computation(t, x0, x_t, eps_hat, v):
    got = vlb_terms(process(), one(x0), one(x_t), torch.tensor([t]), one(eps_hat), one(v))
    assert got.item() == pytest.approx(hand_kl(t, x0, x_t, eps_hat, v), rel=1e-5)


def test_decoder_term_at_t0_matches_the_hand_computation():
    x0, x_t, eps_hat, v = 0.2, 0.35, 0.4, 0.3
    a, beta = ALPHAS_CUMPROD[0], BETAS[0]
    # at t = 0 the posterior mean coefficient of x0 is 1 (alpha-bar_{-1} = 1): the mean is x0_hat itself
    mean = (x_t - math.sqrt(1 - a) * eps_hat) / math.sqrt(a)
    post_var_1 = BETAS[1] * (1 - ALPHAS_CUMPROD[0]) / (1 - ALPHAS_CUMPROD[1])  # beta~_0 clipped to beta~_1
    f = (v + 1) / 2
    std = math.exp(0.5 * (f * math.log(beta) + (1 - f) * math.log(post_var_1)))
    p = norm.cdf((x0 - mean + 1 / 255) / std) - norm.cdf((x0 - mean - 1 / 255) / std)
    got = vlb_terms(process(), one(x0), one(x_t), torch.tensor([0]), one(eps_hat), one(v))
    assert got.item() == pytest.approx(-math.log(p) / math.log(2), rel=1e-5)


def test_the_edge_bins_take_the_tails():
    mean, log_scale = torch.tensor([0.0]), torch.tensor([math.log(0.5)])
    low = discretized_gaussian_nll(torch.tensor([-1.0]), mean, log_scale)
    assert low.item() == pytest.approx(-math.log(norm.cdf((-1 + 1 / 255) / 0.5)), rel=1e-6)
    high = discretized_gaussian_nll(torch.tensor([1.0]), mean, log_scale)
    assert high.item() == pytest.approx(-math.log(1 - norm.cdf((1 - 1 / 255) / 0.5)), rel=1e-6)


def test_a_perfect_model_with_the_posterior_variance_has_zero_kl():
    x0, eps = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    t = torch.tensor([1, 2, 1, 2])
    x_t = process().add_noise(x0, eps, t)
    terms = vlb_terms(process(), x0, x_t, t, eps, -torch.ones_like(x0))  # v = -1: the posterior variance
    assert torch.allclose(terms, torch.zeros(4), atol=1e-6)
    worse = vlb_terms(process(), x0, x_t, t, eps + 0.3, -torch.ones_like(x0))
    assert (worse > 1e-3).all()
