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
