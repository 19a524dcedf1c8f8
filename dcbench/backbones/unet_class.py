"""Class-conditional pixel-space UNet (diffusers ``UNet2DModel`` with ``num_class_embeds``)."""

from __future__ import annotations

from torch import Tensor

from dcbench.backbones.base import (
    Backbone,
    class_ids,
    load_pretrained,
    load_process,
    read_class_names,
    split_learned_variance,
)
from dcbench.data.labels import LabelSet
from dcbench.diffusion.process import VPProcess
from dcbench.registry import BACKBONES

__all__ = ["ClassConditionalUNet"]


class ClassConditionalUNet(Backbone):
    """A pixel UNet2DModel conditioned on class ids; the embedded digits models are two (one with learned variance)."""

    def __init__(self, unet: object, process: VPProcess, classes: list[str] | None = None) -> None:
        super().__init__()
        if not unet.config.num_class_embeds:
            raise ValueError("this UNet2DModel has no class embedding (num_class_embeds is unset): "
                             "it is not class-conditional")
        self.unet = unet.eval().requires_grad_(False)
        self.process = process
        self.classes = classes
        self.image_size = unet.config.sample_size
        self.image_channels = unet.config.in_channels
        self.learned_variance = unet.config.out_channels == 2 * unet.config.in_channels

    @classmethod
    def from_pretrained(cls, pretrained: str, revision: str | None = None,
                        torch_dtype: str = "float32") -> ClassConditionalUNet:
        """Load ``unet/`` and ``scheduler/`` (and class names from ``dcbench.json``, if present)."""
        from diffusers import UNet2DModel

        unet = load_pretrained(UNet2DModel, pretrained, "unet", revision=revision, dtype=torch_dtype)
        return cls(unet, load_process(pretrained, revision=revision),
                   read_class_names(pretrained, "dcbench.json", "classes"))

    def encode_images(self, images: Tensor) -> Tensor:
        return images  # pixel space: x0 is the image

    def decode_latents(self, x0: Tensor) -> Tensor:
        return x0

    def encode_conditions(self, labels: LabelSet) -> Tensor:
        return class_ids(labels, self.classes, self.unet.config.num_class_embeds)

    def network_output(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return self.unet(x_t.to(self.dtype), t, class_labels=cond).sample

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        # With learned variance (out_channels = 2 x in_channels) the second half is v: keep the prediction.
        return split_learned_variance(self.network_output(x_t, t, cond), x_t.shape[1])[0]


@BACKBONES.register("unet-class")
def unet_class(pretrained: str = "embedded:digits", revision: str | None = None,
               torch_dtype: str = "float32") -> ClassConditionalUNet:
    """Class-conditional pixel UNet2DModel (default: the embedded digits model)."""
    return ClassConditionalUNet.from_pretrained(pretrained, revision, torch_dtype)
