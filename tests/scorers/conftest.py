"""A planted-answer backbone: its noise prediction is exact for the class whose template the image is."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler
from torch import Tensor

from dcbench.backbones.base import Backbone
from dcbench.data.labels import LabelSet
from dcbench.diffusion.process import VPProcess


class PlantedBackbone(Backbone):
    """eps_hat(x_t, t, c) = (x_t - sqrt(a) template_c) / sqrt(1 - a): exact iff x0 == template_c."""

    image_size = 4
    image_channels = 1

    def __init__(self, templates: Tensor) -> None:
        super().__init__()
        self.register_buffer("templates", templates)
        self.process = VPProcess.from_scheduler(DDPMScheduler(num_train_timesteps=1000))
        self.calls: list[tuple[Tensor, Tensor, Tensor]] = []

    def encode_images(self, images: Tensor) -> Tensor:
        return images

    def encode_conditions(self, labels: LabelSet) -> Tensor:
        return torch.tensor(labels.prompt_class)

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        self.calls.append((x_t.clone(), t.clone(), cond.clone()))
        a = self.process.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (x_t - a.sqrt() * self.templates[cond]) / (1 - a).sqrt()


@pytest.fixture
def templates() -> Tensor:
    return torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)


@pytest.fixture
def planted(templates: Tensor) -> PlantedBackbone:
    return PlantedBackbone(templates)


@pytest.fixture
def labels() -> LabelSet:
    return LabelSet.from_classes([f"c{i}" for i in range(6)])


class TextPlantedBackbone(PlantedBackbone):
    """The planted backbone with free-text conditions: the prompt "cK" stands for template K."""

    def encode_conditions(self, labels: LabelSet) -> Tensor:
        return torch.tensor([int(p.removeprefix("c")) for p in labels.prompts])


@pytest.fixture
def text_planted(templates: Tensor) -> TextPlantedBackbone:
    return TextPlantedBackbone(templates)
