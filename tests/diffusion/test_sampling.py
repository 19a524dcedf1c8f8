"""DDIM sampling with classifier-free guidance (dcbench.diffusion.sampling).

A point-mass backbone checks the sampler against a closed form: if the data is one image x*, the exact
denoiser output at any (x_t, t) is known in every parameterisation, and deterministic DDIM must end
exactly at x*; with guidance w, at x_u + w (x_c - x_u). The tiny text-unet checks the wiring on a real model.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler
from torch import Tensor

from dcbench.backbones.base import Backbone
from dcbench.data.labels import LabelSet
from dcbench.diffusion.process import VPProcess
from dcbench.diffusion.sampling import ddim_scheduler, generate
from dcbench.registry import BACKBONES

pytestmark = pytest.mark.usefixtures("single_thread")


class PointMass(Backbone):
    """Data = one template per condition: outputs the exact eps / v / x0 for x0 = templates[cond]."""

    image_size, image_channels = 4, 1

    def __init__(self, templates: Tensor, prediction_type: str) -> None:
        super().__init__()
        self.register_buffer("templates", templates)
        scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                                  beta_end=0.012, prediction_type=prediction_type)
        self.process = VPProcess.from_scheduler(scheduler)

    def encode_images(self, images: Tensor) -> Tensor:
        return images

    def decode_latents(self, x0: Tensor) -> Tensor:
        return x0

    def encode_conditions(self, labels: LabelSet) -> Tensor:
        return torch.tensor(labels.prompt_class)

    def null_condition(self) -> Tensor:
        return torch.tensor([len(self.templates) - 1])  # the last template stands for p(x)

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        x0 = self.templates[cond]
        a = self.process.alphas_cumprod[t].view(-1, 1, 1, 1)
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return self.process.target(x0, eps, t)


@pytest.fixture
def templates() -> Tensor:
    return 0.3 * torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_ddim_ends_at_the_point_mass_in_every_parameterisation(templates, prediction_type, eta):
    backbone = PointMass(templates, prediction_type)
    images = generate(backbone, torch.tensor([0, 1, 0]), seeds=[3, 4, 5], num_inference_steps=4, eta=eta)
    torch.testing.assert_close(images, templates[[0, 1, 0]], atol=1e-4, rtol=0)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_guidance_extrapolates_from_the_null_condition(templates, prediction_type):
    backbone = PointMass(templates, prediction_type)
    w = 2.0
    images = generate(backbone, torch.tensor([0, 1]), backbone.null_condition(), seeds=[0, 1],
                      num_inference_steps=5, guidance_scale=w)
    null = templates[2]
    torch.testing.assert_close(images, (null + w * (templates[[0, 1]] - null)).clamp(-1, 1), atol=1e-4, rtol=0)


def test_scheduler_has_the_backbones_forward_process(templates):
    backbone = PointMass(templates, "v_prediction")
    scheduler = ddim_scheduler(backbone.process, clip=1.0)
    torch.testing.assert_close(scheduler.alphas_cumprod, backbone.process.alphas_cumprod, atol=1e-6, rtol=0)
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.clip_sample and not ddim_scheduler(backbone.process).config.clip_sample
    scheduler.set_timesteps(10)
    assert int(scheduler.timesteps[0]) == 999  # trailing spacing: sampling starts from pure noise


def test_guidance_needs_the_null_condition(templates):
    with pytest.raises(ValueError, match="null condition"):
        generate(PointMass(templates, "epsilon"), torch.tensor([0]), seeds=[0], guidance_scale=3.0)
    with pytest.raises(ValueError, match="one seed per image"):
        generate(PointMass(templates, "epsilon"), torch.tensor([0, 1]), seeds=[0])


@pytest.fixture(scope="module")
def text_unet(tiny_text_unet_dir):
    return BACKBONES.build({"name": "text-unet", "pretrained": str(tiny_text_unet_dir)})


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_text_unet_samples_are_images_determined_by_their_seeds(text_unet, eta):
    cond = text_unet.encode_prompts(["a red circle", "a blue square", "a red circle"])
    options = {"uncond": text_unet.null_condition(), "num_inference_steps": 3, "guidance_scale": 3.0, "eta": eta}
    images = generate(text_unet, cond, seeds=[0, 1, 2], batch_size=3, **options)
    assert images.shape == (3, 3, 8, 8) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    # the same seeds in other batches, and an image generated alone: the same images (up to float rounding,
    # which batched convolutions do differently and the random tiny model amplifies: 4e-5 measured)
    torch.testing.assert_close(generate(text_unet, cond, seeds=[0, 1, 2], batch_size=2, **options), images,
                               atol=1e-3, rtol=0)
    torch.testing.assert_close(generate(text_unet, cond[1:2], seeds=[1], **options), images[1:2], atol=1e-3, rtol=0)
    assert not torch.allclose(generate(text_unet, cond, seeds=[3, 4, 5], batch_size=3, **options), images)
