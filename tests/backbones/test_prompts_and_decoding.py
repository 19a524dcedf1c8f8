"""The backbone API for generation and features: ``encode_prompts``, ``null_condition``, ``decode_latents``."""

from __future__ import annotations

import pytest
import torch

from dcbench.backbones.base import ModelNotFoundError
from dcbench.data.labels import LabelSet
from dcbench.registry import BACKBONES

pytestmark = pytest.mark.usefixtures("single_thread")


def test_stable_diffusion_conditions_are_its_prompt_embeddings(tiny_sd_dir):
    backbone = BACKBONES.build({"name": "stable-diffusion", "pretrained": str(tiny_sd_dir)})
    labels = LabelSet.from_classes(["cat", "dog"], ["a photo of a {}.", "a {}"])
    torch.testing.assert_close(backbone.encode_conditions(labels), backbone.encode_prompts(labels.prompts))
    null = backbone.null_condition()
    torch.testing.assert_close(null, backbone.encode_prompts([""]))
    assert null.shape[0] == 1 and null.shape[1:] == backbone.encode_prompts(["a cat"]).shape[1:]


def test_latent_backbones_decode_through_the_vae(tiny_sd_dir, tiny_info):
    backbone = BACKBONES.build({"name": "stable-diffusion", "pretrained": str(tiny_sd_dir)})
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    images = backbone.decode_latents(latents)
    assert images.shape == (2, 3, tiny_info.image_size, tiny_info.image_size) and images.dtype == torch.float32
    # independently: diffusers' decode of the unscaled latents
    expected = backbone.vae.vae.decode(latents / tiny_info.vae_scaling_factor).sample
    torch.testing.assert_close(images, expected)


def test_class_conditional_unet_decodes_pixels_and_takes_no_text(tiny_unet_class_dir):
    backbone = BACKBONES.build({"name": "unet-class", "pretrained": str(tiny_unet_class_dir)})
    x0 = torch.rand(2, 3, 8, 8)
    assert torch.equal(backbone.decode_latents(backbone.encode_images(x0)), x0)
    for call in (lambda: backbone.encode_prompts(["a cat"]), backbone.null_condition):
        with pytest.raises(NotImplementedError, match="ClassConditionalUNet is class-conditional"):
            call()


def test_text_unet_null_condition_is_the_empty_prompt(tiny_text_unet_dir):
    backbone = BACKBONES.build({"name": "text-unet", "pretrained": str(tiny_text_unet_dir)})
    torch.testing.assert_close(backbone.null_condition(), backbone.encode_prompts([""]))
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    torch.testing.assert_close(backbone.decode_latents(backbone.encode_images(images)), images)


def test_an_embedded_model_that_is_not_shipped_is_a_model_not_found_error():
    with pytest.raises(ModelNotFoundError, match="train-embedded"):
        BACKBONES.build({"name": "text-unet", "pretrained": "embedded:no-such-world"})
