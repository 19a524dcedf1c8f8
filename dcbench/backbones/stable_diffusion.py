"""Stable Diffusion 1.x / 2.x: text-conditional latent UNet (eps or v prediction, from the scheduler)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dcbench.backbones.base import load_pretrained, load_process
from dcbench.backbones.latent import LatentBackbone, VAEEncoder
from dcbench.data.labels import LabelSet
from dcbench.diffusion.process import VPProcess
from dcbench.registry import BACKBONES

__all__ = ["StableDiffusion"]


class StableDiffusion(LatentBackbone):
    """UNet2DConditionModel + AutoencoderKL + CLIP text encoder, loaded from a pipeline directory or Hub id."""

    def __init__(self, unet: torch.nn.Module, vae: VAEEncoder, text_encoder: torch.nn.Module, tokenizer: object,
                 process: VPProcess, text_batch_size: int = 64) -> None:
        super().__init__(vae, process, unet.config.sample_size)
        self.unet = unet.eval().requires_grad_(False)
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.text_batch_size = text_batch_size

    @classmethod
    def from_pretrained(cls, pretrained: str = "stabilityai/stable-diffusion-2-base", revision: str | None = None,
                        torch_dtype: str = "float32") -> StableDiffusion:
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        def load(component: type, subfolder: str, **kw: object) -> object:
            return load_pretrained(component, pretrained, subfolder, revision=revision, **kw)

        return cls(load(UNet2DConditionModel, "unet", dtype=torch_dtype),
                   VAEEncoder.from_pretrained(pretrained, revision, torch_dtype),
                   load(CLIPTextModel, "text_encoder", dtype=torch_dtype),
                   load(CLIPTokenizer, "tokenizer"),
                   load_process(pretrained, revision=revision))

    @torch.inference_mode()
    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        device = next(self.text_encoder.parameters()).device
        chunks = []
        for i in range(0, len(prompts), self.text_batch_size):
            tokens = self.tokenizer(list(prompts[i : i + self.text_batch_size]), padding="max_length",
                                    max_length=self.tokenizer.model_max_length, truncation=True,
                                    return_tensors="pt")
            chunks.append(self.text_encoder(tokens.input_ids.to(device))[0])
        return torch.cat(chunks)

    def encode_conditions(self, labels: LabelSet) -> Tensor:
        return self.encode_prompts(labels.prompts)

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return self.unet(x_t.to(self.dtype), t, encoder_hidden_states=cond.to(self.dtype)).sample


@BACKBONES.register("stable-diffusion")
def stable_diffusion(pretrained: str = "stabilityai/stable-diffusion-2-base", revision: str | None = None,
                     torch_dtype: str = "float32") -> StableDiffusion:
    """Stable Diffusion 1.x/2.x text-to-image model (zero-shot classification from prompts)."""
    return StableDiffusion.from_pretrained(pretrained, revision, torch_dtype)
