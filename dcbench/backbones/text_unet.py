"""Pixel-space text-conditional UNet on an open_clip text tower (the shapes world's diffusion model)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dcbench.backbones.base import Backbone, load_pretrained, load_process
from dcbench.data.labels import LabelSet
from dcbench.diffusion.process import VPProcess
from dcbench.embedded import resolve_pretrained
from dcbench.registry import BACKBONES

__all__ = ["TextUNet"]


class TextUNet(Backbone):
    """UNet2DConditionModel over pixels (optionally space-to-depth patched), cross-attending to text tokens.

    Args:
        unet: a diffusers ``UNet2DConditionModel`` with ``in_channels = 3 * patch_size**2``.
        clip: an open_clip model; only its text tower is used, frozen.
        tokenizer: open_clip's tokenizer for it.
        process: the forward process (from the scheduler config).
        patch_size: pixels per side folded into channels (``pixel_unshuffle``); 1 for plain pixels.
        text_layer: which text block conditions the UNet, from the end (-1 last; SD 2 uses -2).
    """

    image_channels = 3

    def __init__(self, unet: nn.Module, clip: nn.Module, tokenizer: Any, process: VPProcess, patch_size: int = 1,
                 text_layer: int = -1, text_batch_size: int = 256) -> None:
        super().__init__()
        if unet.config.in_channels != 3 * patch_size**2:
            raise ValueError(f"a UNet with {unet.config.in_channels} input channels cannot take RGB patches of "
                             f"{patch_size}x{patch_size} pixels (that needs {3 * patch_size**2})")
        self.unet = unet.eval().requires_grad_(False)
        self.clip = clip.eval().requires_grad_(False)
        self.tokenizer, self.process = tokenizer, process
        self.patch_size, self.text_layer, self.text_batch_size = patch_size, text_layer, text_batch_size
        self.image_size = unet.config.sample_size * patch_size

    @classmethod
    def from_pretrained(cls, pretrained: str = "embedded:shapes-world", text_encoder: str | None = None,
                        revision: str | None = None, torch_dtype: str = "float32", text_layer: int = -1) -> TextUNet:
        """``unet/`` and ``scheduler/`` from ``pretrained``; the text tower from ``text_encoder``
        (an open_clip id; default ``local-dir:<pretrained>/clip``); ``patch_size`` from ``dcbench.json``."""
        from diffusers import UNet2DConditionModel

        from dcbench.openclip import load_open_clip, load_tokenizer

        unet = load_pretrained(UNet2DConditionModel, pretrained, "unet", revision=revision, dtype=torch_dtype)
        folder = Path(resolve_pretrained(pretrained))
        text_encoder = text_encoder or f"local-dir:{folder / 'clip'}"
        info = folder / "dcbench.json"
        patch_size = json.loads(info.read_text()).get("patch_size", 1) if info.is_file() else 1
        return cls(unet, load_open_clip(text_encoder), load_tokenizer(text_encoder),
                   load_process(pretrained, revision=revision), patch_size=patch_size, text_layer=text_layer)

    def encode_images(self, images: Tensor) -> Tensor:
        return F.pixel_unshuffle(images, self.patch_size) if self.patch_size > 1 else images

    def decode_latents(self, x0: Tensor) -> Tensor:
        return F.pixel_shuffle(x0, self.patch_size) if self.patch_size > 1 else x0

    def text_states(self, tokens: Tensor) -> Tensor:
        """Token ids -> the text tower's per-token states (the UNet's ``encoder_hidden_states``)."""
        from dcbench.openclip import text_states

        return text_states(self.clip, tokens, self.text_layer)

    @torch.inference_mode()
    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        device = next(self.clip.parameters()).device
        tokens = self.tokenizer(list(prompts))
        return torch.cat([self.text_states(tokens[i : i + self.text_batch_size].to(device))
                          for i in range(0, len(tokens), self.text_batch_size)])

    def encode_conditions(self, labels: LabelSet) -> Tensor:
        return self.encode_prompts(labels.prompts)

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return self.unet(x_t.to(self.dtype), t, encoder_hidden_states=cond.to(self.dtype)).sample


@BACKBONES.register("text-unet")
def text_unet(pretrained: str = "embedded:shapes-world", text_encoder: str | None = None, revision: str | None = None,
              torch_dtype: str = "float32", text_layer: int = -1) -> TextUNet:
    """Pixel UNet2DConditionModel on an open_clip text tower (default: the embedded shapes-world model)."""
    return TextUNet.from_pretrained(pretrained, text_encoder, revision, torch_dtype, text_layer)
