"""DiT (Peebles & Xie): class-conditional latent transformer with learned variance."""

from __future__ import annotations

import torch
from torch import Tensor

from dcbench.backbones.base import class_ids, load_pretrained, load_process, read_class_names, split_learned_variance
from dcbench.backbones.latent import LatentBackbone, VAEEncoder
from dcbench.data.folder import imagenet_class_names
from dcbench.data.labels import LabelSet
from dcbench.diffusion.process import VPProcess
from dcbench.registry import BACKBONES

__all__ = ["DiT"]


class DiT(LatentBackbone):
    """DiT-XL/2 and friends via diffusers' ``DiTTransformer2DModel`` + ``AutoencoderKL``."""

    def __init__(self, transformer: torch.nn.Module, vae: VAEEncoder, process: VPProcess,
                 classes: list[str] | None = None) -> None:
        super().__init__(vae, process, transformer.config.sample_size)
        self.transformer = transformer.eval().requires_grad_(False)
        self.classes = classes
        config = transformer.config
        self.learned_variance = (config.out_channels or config.in_channels) == 2 * config.in_channels

    @classmethod
    def from_pretrained(cls, pretrained: str = "facebook/DiT-XL-2-256", revision: str | None = None,
                        torch_dtype: str = "float32") -> DiT:
        """Load a DiT pipeline directory: ``transformer/``, ``vae/``, ``scheduler/``, ``model_index.json``."""
        from diffusers import DiTTransformer2DModel

        transformer = load_pretrained(DiTTransformer2DModel, pretrained, "transformer", revision=revision,
                                      dtype=torch_dtype)
        classes = read_class_names(pretrained, "model_index.json", "id2label")
        if classes is None and transformer.config.num_embeds_ada_norm == 1000:
            classes = imagenet_class_names()
        return cls(transformer, VAEEncoder.from_pretrained(pretrained, revision, torch_dtype),
                   load_process(pretrained, revision=revision), classes)

    def encode_conditions(self, labels: LabelSet) -> Tensor:
        return class_ids(labels, self.classes, self.transformer.config.num_embeds_ada_norm)

    def network_output(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return self.transformer(x_t.to(self.dtype), timestep=t, class_labels=cond).sample

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        # DiT predicts eps and the learned variance in one tensor of 2C channels: keep eps.
        return split_learned_variance(self.network_output(x_t, t, cond), x_t.shape[1])[0]


@BACKBONES.register("dit")
def dit(pretrained: str = "facebook/DiT-XL-2-256", revision: str | None = None,
        torch_dtype: str = "float32") -> DiT:
    """DiT class-conditional latent diffusion (ImageNet class names when the model has 1,000 classes)."""
    return DiT.from_pretrained(pretrained, revision, torch_dtype)
