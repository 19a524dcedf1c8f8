"""Training pieces of the embedded models: the contrastive loss, text-conditional denoiser steps, the corpus."""

from __future__ import annotations

import math

import pytest
import torch

from dcbench.registry import BACKBONES
from dcbench.training.contrastive import contrastive_loss
from dcbench.training.world import CaptionTensors, TextDenoiserTraining

pytestmark = pytest.mark.usefixtures("single_thread")


def test_identical_captions_are_all_positives():
    images = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    texts = torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]])
    tokens = torch.tensor([[1, 2], [1, 2], [3, 4]])  # captions 0 and 1 are the same words
    scale = torch.tensor(math.log(10.0))
    targets = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])  # written out by hand
    logits = 10 * images @ texts.T
    F = torch.nn.functional
    expected = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets.T)) / 2
    loss = contrastive_loss(images, texts, scale, tokens)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    plain = (F.cross_entropy(logits, torch.arange(3)) + F.cross_entropy(logits.T, torch.arange(3))) / 2
    assert loss.item() != pytest.approx(plain.item(), rel=1e-3)


def test_caption_corpus_renders_once(tiny_text_unet_dir):
    backbone = BACKBONES.build({"name": "text-unet", "pretrained": str(tiny_text_unet_dir)})
    data = CaptionTensors(6, seed=0, tokenizer=backbone.tokenizer)
    image, tokens = data[1]
    assert len(data) == 6 and image.shape == (3, 32, 32) and tokens.shape == (16,)
    assert image.min() >= -1 and image.max() <= 1
    assert torch.equal(data.tokens[1], backbone.tokenizer([data.captions[1]])[0])


def test_text_denoiser_step_and_caption_dropout(tiny_text_unet_dir):
    backbone = BACKBONES.build({"name": "text-unet", "pretrained": str(tiny_text_unet_dir)})
    empty = backbone.tokenizer([""])[0]
    module = TextDenoiserTraining(backbone, empty, cond_dropout=1.0)
    tokens = backbone.tokenizer(["a red circle", "a blue square"])
    dropped = module.condition(tokens)["encoder_hidden_states"]
    assert torch.allclose(dropped, backbone.text_states(empty.expand(2, -1)))
    module.cond_dropout = 0.0
    kept = module.condition(tokens)["encoder_hidden_states"]
    assert torch.allclose(kept, backbone.text_states(tokens))
    loss = module.training_step((torch.rand(2, 3, 8, 8) * 2 - 1, tokens), 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None for p in backbone.unet.parameters())
    assert all(p.grad is None for p in backbone.clip.parameters())  # the text tower stays frozen


@pytest.mark.parametrize("learned_variance", [False, True])
def test_denoiser_loss_is_simple_or_hybrid(learned_variance):
    """With learned variance: simple loss + the bound on (detached eps, v), so the bound trains v alone."""
    from diffusers import DDPMScheduler, UNet2DModel

    from dcbench.diffusion.process import VPProcess
    from dcbench.diffusion.vlb import vlb_terms
    from dcbench.training.denoiser import DenoiserTraining

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=2 if learned_variance else 1,
                       block_out_channels=(4, 8), layers_per_block=1, norm_num_groups=2, num_class_embeds=3,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    process = VPProcess.from_scheduler(DDPMScheduler(num_train_timesteps=1000))
    module = DenoiserTraining(unet, process)
    images, labels = torch.rand(4, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0])
    torch.manual_seed(1)
    loss = module.training_step((images, labels), 0)
    torch.manual_seed(1)  # the same t and eps, by hand
    t = torch.randint(0, 1000, (4,))
    eps = torch.randn_like(images)
    x_t = process.add_noise(images, eps, t)
    with torch.no_grad():
        out = unet(x_t, t, class_labels=labels).sample
    expected = torch.nn.functional.mse_loss(out[:, :1], eps)
    if learned_variance:
        expected = expected + vlb_terms(process, images, x_t, t, out[:, :1], out[:, 1:]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    if learned_variance:  # the bound trains the variance channels; the eps channels learn from the simple loss
        module.zero_grad()
        torch.manual_seed(1)
        module.training_step((images, labels), 0).backward()
        hybrid = unet.conv_out.weight.grad.clone()
        module.zero_grad()
        torch.nn.functional.mse_loss(unet(x_t, t, class_labels=labels).sample[:, :1], eps).backward()
        simple = unet.conv_out.weight.grad
        assert torch.allclose(hybrid[0], simple[0], atol=1e-6) and hybrid[1].abs().sum() > 0
