"""Generating images with a backbone: DDIM (diffusers' scheduler) with classifier-free guidance.

The scheduler is built from the backbone's forward process (its ``alphas_cumprod`` and prediction
type), so any backbone samples the way it was trained to denoise, whatever scheduler its checkpoint
ships. Sampling is deterministic: DDIM with eta = 0 adds no noise after the first step, and the
starting noise comes from a CPU generator (or is given).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from dcbench.diffusion.process import VPProcess

if TYPE_CHECKING:
    from diffusers import DDIMScheduler

    from dcbench.backbones.base import Backbone

__all__ = ["ddim_scheduler", "generate", "x0_shape"]


def ddim_scheduler(process: VPProcess) -> DDIMScheduler:
    """A diffusers ``DDIMScheduler`` with ``process``'s noise schedule and prediction type.

    "trailing" spacing starts at the last training timestep (pure noise), and the final step goes to
    alpha = 1 (a clean image), as recommended by Lin et al. 2024 ("Common Diffusion Noise Schedules and
    Sample Steps are Flawed"); x0 is not clipped, since latents are not bounded.
    """
    from diffusers import DDIMScheduler

    a = process.alphas_cumprod.double()
    betas = 1 - a / torch.cat([a.new_ones(1), a[:-1]])  # alphas_cumprod = cumprod(1 - betas)
    return DDIMScheduler(num_train_timesteps=a.numel(), trained_betas=betas.tolist(),
                         prediction_type=process.prediction_type, clip_sample=False, set_alpha_to_one=True,
                         timestep_spacing="trailing")


def _device(backbone: Backbone) -> torch.device:
    tensor = next(iter((*backbone.parameters(), *backbone.buffers())), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def x0_shape(backbone: Backbone) -> torch.Size:
    """The shape of one x0 (latent or pixels) of the backbone, found by encoding a blank image."""
    if backbone.image_size is None:
        raise ValueError(f"{type(backbone).__name__} takes any image size: give the shape of x0 to sample")
    blank = torch.zeros(1, backbone.image_channels, backbone.image_size, backbone.image_size,
                        device=_device(backbone))
    with torch.inference_mode():
        return backbone.encode_images(blank).shape[1:]


def _guided(backbone: Backbone, x: Tensor, t: Tensor, cond: Tensor, uncond: Tensor | None,
            guidance_scale: float) -> Tensor:
    """The network output with classifier-free guidance: uncond + w (cond - uncond), in one batched call.

    The combination is linear, so it holds in any parameterisation (eps, v or x0).
    """
    n = x.shape[0]
    if uncond is None or guidance_scale == 1:
        return backbone(x, t.expand(n), cond).float()
    both = torch.cat([uncond.expand(n, *uncond.shape[1:]), cond])
    out_uncond, out_cond = backbone(torch.cat([x, x]), t.expand(2 * n), both).float().chunk(2)
    return out_uncond + guidance_scale * (out_cond - out_uncond)


@torch.inference_mode()
def generate(backbone: Backbone, cond: Tensor, uncond: Tensor | None = None, *, seed: int = 0,
             noise: Tensor | None = None, num_inference_steps: int = 25, guidance_scale: float = 1.0,
             batch_size: int = 32, progress: bool = False) -> Tensor:
    """Sample one image per row of ``cond`` (conditions as ``encode_prompts`` returns them).

    Args:
        backbone: the diffusion model; it needs ``decode_latents``.
        cond: (n, ...) one condition per image to generate, on the backbone's device.
        uncond: the unconditional condition (``backbone.null_condition()``), needed if ``guidance_scale != 1``.
        seed: seeds the CPU generator of the starting noise (unless ``noise`` is given).
        noise: (n, *x0 shape) starting noise, e.g. drawn per image so that an image does not depend on
            which others are generated with it.
        num_inference_steps: DDIM steps (2 denoiser calls each with guidance, 1 without).
        guidance_scale: w of classifier-free guidance; 1 is plain conditional sampling.
        batch_size: images per denoiser call.
        progress: show a progress bar (tqdm) over the denoising steps.

    Returns:
        (n, C, H, W) float32 images in [-1, 1], on the CPU.
    """
    from tqdm.auto import tqdm

    if guidance_scale != 1 and uncond is None:
        raise ValueError("classifier-free guidance (guidance_scale != 1) needs uncond, the null condition")
    n = cond.shape[0]
    if noise is None:
        noise = torch.randn((n, *x0_shape(backbone)), generator=torch.Generator().manual_seed(seed))
    if noise.shape[0] != n:
        raise ValueError(f"noise holds {noise.shape[0]} starting points for {n} conditions")
    scheduler = ddim_scheduler(backbone.process)
    scheduler.set_timesteps(num_inference_steps)
    device = _device(backbone)
    images = []
    with tqdm(total=-(-n // batch_size) * len(scheduler.timesteps), desc="sampling", unit="step",
              disable=not progress) as bar:
        for start in range(0, n, batch_size):
            x = noise[start : start + batch_size].to(device, torch.float32) * scheduler.init_noise_sigma
            c = cond[start : start + batch_size]
            for t in scheduler.timesteps:
                out = _guided(backbone, x, t.to(device), c, uncond, guidance_scale)
                x = scheduler.step(out, t, x).prev_sample
                bar.update()
            images.append(backbone.decode_latents(x).float().clamp(-1, 1).cpu())
    return torch.cat(images)
