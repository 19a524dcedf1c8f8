"""What latent backbones (Stable Diffusion, DiT) share: the VAE encoder and the image side."""

from __future__ import annotations

from torch import Tensor, nn

from dcbench.backbones.base import Backbone, load_pretrained
from dcbench.diffusion.process import VPProcess

__all__ = ["LatentBackbone", "VAEEncoder"]


class VAEEncoder(nn.Module):
    """Pixels in [-1, 1] -> scaled latents (``forward``), and back (``decode``)."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        # The latents are scaled to roughly unit variance (0.18215 for SD 1.x/2.x and DiT's VAE);
        # read it from the config so other VAEs work too.
        self.scaling_factor = float(vae.config.scaling_factor)
        self.downscale = 2 ** (len(vae.config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(cls, pretrained: str, revision: str | None = None, torch_dtype: str = "float32",
                        subfolder: str = "vae") -> VAEEncoder:
        from diffusers import AutoencoderKL

        return cls(load_pretrained(AutoencoderKL, pretrained, subfolder, revision=revision, dtype=torch_dtype))

    def forward(self, images: Tensor) -> Tensor:
        dtype = next(self.vae.parameters()).dtype
        # The posterior mean, not a sample: deterministic, as in the reference implementation.
        return self.vae.encode(images.to(dtype)).latent_dist.mean.float() * self.scaling_factor

    def decode(self, latents: Tensor) -> Tensor:
        """Scaled latents -> images in [-1, 1] (float32, not clamped: the VAE may overshoot a little)."""
        dtype = next(self.vae.parameters()).dtype
        return self.vae.decode((latents / self.scaling_factor).to(dtype)).sample.float()


class LatentBackbone(Backbone):
    """A backbone that diffuses in a VAE's latent space; subclasses add the denoiser and conditions."""

    image_channels = 3
    x0_range = None  # latents are not bounded

    def __init__(self, vae: VAEEncoder, process: VPProcess, latent_size: int) -> None:
        super().__init__()
        self.vae = vae
        self.process = process
        self.image_size = latent_size * vae.downscale

    def encode_images(self, images: Tensor) -> Tensor:
        return self.vae(images)

    def decode_latents(self, x0: Tensor) -> Tensor:
        return self.vae.decode(x0)
