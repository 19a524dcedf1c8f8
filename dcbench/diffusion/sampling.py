"""Generating images with a backbone: DDIM (diffusers' scheduler) with classifier-free guidance.

The scheduler is built from the backbone's forward process (its ``alphas_cumprod`` and prediction
type), so any backbone samples the way it was trained to denoise, whatever scheduler its checkpoint
ships. Sampling is deterministic: every image's noise comes from its own seeded CPU generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from dcbench.diffusion.process import VPProcess

if TYPE_CHECKING:
    from diffusers import DDIMScheduler

    from dcbench.backbones.base import Backbone

__all__ = ["ddim_scheduler", "generate", "x0_shape"]


def ddim_scheduler(process: VPProcess, clip: float | None = None) -> DDIMScheduler:
    """A diffusers ``DDIMScheduler`` with ``process``'s noise schedule and prediction type.

    "trailing" spacing starts at the last training timestep (pure noise), and the final step goes to
    alpha = 1 (a clean image), as recommended by Lin et al. 2024 ("Common Diffusion Noise Schedules and
    Sample Steps are Flawed"). ``clip``: clip every x0 estimate to [-clip, clip] (pixel models; None for
    latents). Near t = T an eps-model's x0 estimate divides its error by sqrt(alpha) ~ 0.006; unclipped,
    a pixel model's samples then stay noise (measured on the shapes-world model).
    """
    from diffusers import DDIMScheduler

    a = process.alphas_cumprod.double()
    betas = 1 - a / torch.cat([a.new_ones(1), a[:-1]])  # alphas_cumprod = cumprod(1 - betas)
    return DDIMScheduler(num_train_timesteps=a.numel(), trained_betas=betas.tolist(),
                         prediction_type=process.prediction_type, clip_sample=clip is not None,
                         clip_sample_range=clip or 1.0, set_alpha_to_one=True, timestep_spacing="trailing")


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


def _draw(generators: list[torch.Generator], shape: torch.Size, device: torch.device) -> Tensor:
    """One standard normal tensor of ``shape`` per image, each from that image's generator."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)


@torch.inference_mode()
def generate(backbone: Backbone, cond: Tensor, uncond: Tensor | None = None, *, seeds: Sequence[int],
             num_inference_steps: int = 25, guidance_scale: float = 1.0, eta: float = 0.0, batch_size: int = 32,
             progress: bool = False) -> Tensor:
    """Sample one image per row of ``cond`` (conditions as ``encode_prompts`` or ``encode_conditions`` return them).

    Args:
        backbone: the diffusion model; it needs ``decode_latents``.
        cond: (n, ...) one condition per image to generate, on the backbone's device.
        uncond: the unconditional condition (``backbone.null_condition()``), needed if ``guidance_scale != 1``.
        seeds: one per image: its CPU generator draws its starting noise (and, with ``eta > 0``, its noise at
            every step), so an image does not depend on which others are generated with it.
        num_inference_steps: DDIM steps (2 denoiser calls each with guidance, 1 without).
        guidance_scale: w of classifier-free guidance; 1 is plain conditional sampling.
        eta: DDIM's eta: 0 is deterministic given the starting noise, 1 is DDPM-like ancestral sampling.
        batch_size: images per denoiser call.
        progress: show a progress bar (tqdm) over the denoising steps.

    Returns:
        (n, C, H, W) float32 images in [-1, 1], on the CPU.
    """
    from tqdm.auto import tqdm

    if guidance_scale != 1 and uncond is None:
        raise ValueError("classifier-free guidance (guidance_scale != 1) needs uncond, the null condition")
    n = cond.shape[0]
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for {n} conditions: give one seed per image")
    shape = x0_shape(backbone)
    scheduler = ddim_scheduler(backbone.process, backbone.x0_range)
    scheduler.set_timesteps(num_inference_steps)
    device = _device(backbone)
    images = []
    with tqdm(total=-(-n // batch_size) * len(scheduler.timesteps), desc="sampling", unit="step",
              disable=not progress) as bar:
        for start in range(0, n, batch_size):
            generators = [torch.Generator().manual_seed(s) for s in seeds[start : start + batch_size]]
            x = _draw(generators, shape, device) * scheduler.init_noise_sigma
            c = cond[start : start + batch_size]
            for t in scheduler.timesteps:
                out = _guided(backbone, x, t.to(device), c, uncond, guidance_scale)
                fresh = _draw(generators, shape, device) if eta > 0 else None
                x = scheduler.step(out, t, x, eta=eta, variance_noise=fresh).prev_sample
                bar.update()
            images.append(backbone.decode_latents(x).float().clamp(-1, 1).cpu())
    return torch.cat(images)
