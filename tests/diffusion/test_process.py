import pytest
import torch
from diffusers import DDPMScheduler

from dcbench.diffusion.losses import denoising_error
from dcbench.diffusion.process import VPProcess


def process(prediction_type: str = "epsilon") -> VPProcess:
    return VPProcess.from_scheduler(DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type))


def test_add_noise_matches_formula_and_diffusers():
    p = process()
    x0, eps, t = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4), torch.tensor([0, 500, 999])
    a = p.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(p.add_noise(x0, eps, t), a.sqrt() * x0 + (1 - a).sqrt() * eps)
    torch.testing.assert_close(p.add_noise(x0, eps, t), DDPMScheduler(num_train_timesteps=1000).add_noise(x0, eps, t))


def test_noising_stays_float32_for_half_inputs():
    p = process()
    x0, eps = torch.randn(2, 1, 2, 2).half(), torch.randn(2, 1, 2, 2).half()
    out = p.add_noise(x0, eps, torch.tensor([998, 999]))
    assert out.dtype == torch.float32
    assert p.alphas_cumprod.dtype == torch.float32
    # near T the fp16 products collapse; ours keep neighbouring timesteps apart
    assert p.alphas_cumprod[998] != p.alphas_cumprod[999]


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_to_epsilon_inverts_each_parameterisation(prediction_type):
    p = process(prediction_type)
    x0, eps, t = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2), torch.tensor([10, 200, 600, 900])
    x_t = p.add_noise(x0, eps, t)
    target = p.target(x0, eps, t)  # what a perfect network would output
    torch.testing.assert_close(p.to_epsilon(target, x_t, t), eps, atol=1e-4, rtol=1e-4)


def test_prediction_type_comes_from_scheduler_config():
    assert process("v_prediction").prediction_type == "v_prediction"
    with pytest.raises(ValueError, match=r"prediction_type"):
        VPProcess(torch.ones(10), "flow")


def test_losses_are_per_sample_means():
    a, b = torch.zeros(2, 1, 2, 2), torch.tensor([1.0, 2.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    assert denoising_error(a, b, "l2").tolist() == [1.0, 4.0]
    assert denoising_error(a, b, "l1").tolist() == [1.0, 2.0]
    assert denoising_error(a, b, "huber").tolist() == [0.5, 1.5]
    with pytest.raises(ValueError, match=r"unknown loss"):
        denoising_error(a, b, "l3")
