"""Diffusion Classifier (Li et al. 2023, Algorithm 1 and 2): pick the class whose condition best predicts the noise.

For every image, the same (t, eps) samples are used for every candidate: the error of one class
minus that of another then has far smaller variance than either error alone (paired differences),
which is what makes a few dozen samples enough to rank classes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dcbench.backbones.base import Backbone
from dcbench.checkpoints import load_tensors
from dcbench.data.labels import LabelSet
from dcbench.diffusion.losses import LOSSES, denoising_error
from dcbench.diffusion.posterior import stagewise_probs
from dcbench.diffusion.pruning import PruningSchedule
from dcbench.diffusion.samplers import TimestepSampler
from dcbench.diffusion.vlb import OBJECTIVES, vlb_terms
from dcbench.registry import BACKBONES, PRUNING, SAMPLERS, SCORERS
from dcbench.scorers.base import Scorer

__all__ = ["PRECISIONS", "DiffusionClassifier", "load_noise"]

#: ``precision`` -> autocast dtype of the denoiser's forward pass (None: float32, no autocast)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: what an allocator raises when a batch does not fit (torch.OutOfMemoryError from torch 2.5 on)
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def load_noise(path: str | Path) -> Tensor:
    """A saved noise tensor, as the reference ``--noise_path`` (``torch.save`` or safetensors ``noise``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"noise file {path} does not exist")
    noise = load_tensors(path)
    if isinstance(noise, dict) and "noise" in noise:  # safetensors holds named tensors
        noise = noise["noise"]
    if not isinstance(noise, Tensor):
        raise TypeError(f"{path} holds a {type(noise).__name__}, not a tensor of noise")
    return noise.float()


@dataclass
class _ImagePlan:
    """Everything random about one image: its timestep pool and its noise."""

    timesteps: Tensor  # (pool,) long
    noise: Tensor  # (pool * n_trials, *x0.shape)


class DiffusionClassifier(Scorer):
    """Scores every candidate condition by its mean denoising error over shared (t, eps) samples.

    Args:
        backbone: the conditional diffusion model.
        sampler: which timesteps (strategy object).
        pruning: how many samples per stage and which candidates survive (strategy object).
        loss: ``l2``, ``l1`` or ``huber`` between the true and the predicted noise (uniform over t, Eq. 3 as
            the paper approximates it); for backbones with learned variance also ``vlb``, the exact
            variational bound terms (``dcbench.diffusion.vlb``), or ``l2+vlb``, their sum (Table 5).
        n_trials: noises per timestep.
        temperature: tau in p(c|x) = softmax(-error / tau) (Eq. 6 has tau = 1, which gives nearly
            uniform probabilities because errors differ by little; fit it per model with ``dcbench
            calibrate``). With pruning, the softmax is taken stage by stage over shared samples
            (``dcbench.diffusion.posterior``).
        batch_size: denoiser evaluations per forward pass (across candidates and images).
        seed: with the image id, fixes every timestep and noise of that image.
        noise_path: a saved noise tensor used for every image instead (the reference ``--noise_path``).
        precision: ``fp32``, or ``bf16``/``fp16`` autocast for the denoiser (noising stays float32).
        compile: run the denoiser through ``torch.compile``.
        channels_last: run the backbone and its inputs in channels-last memory format (the layout fast
            convolution kernels want, on CPU and on tensor cores; diffusers recommends it for the SD UNet).
            The backbone is converted in place when scoring starts; results agree to float rounding.
    """

    def __init__(self, backbone: Backbone, sampler: TimestepSampler, pruning: PruningSchedule, loss: str = "l2",
                 n_trials: int = 1, temperature: float = 1.0, batch_size: int = 256, seed: int = 0,
                 noise_path: str | None = None, precision: str = "fp32", compile: bool = False,
                 channels_last: bool = True) -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if loss not in LOSSES + OBJECTIVES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES + OBJECTIVES)}")
        if loss in OBJECTIVES and not backbone.learned_variance:
            raise ValueError(f"loss {loss!r} needs a backbone with learned variance (a DiT, or a model whose output "
                             f"has twice its input's channels); {type(backbone).__name__} has none: use loss l2")
        if n_trials < 1 or batch_size < 1 or temperature <= 0:
            raise ValueError("n_trials and batch_size must be >= 1 and temperature > 0")
        self.backbone = backbone
        self.sampler, self.pruning = sampler, pruning
        self.loss, self.n_trials, self.temperature = loss, n_trials, float(temperature)
        self.batch_size, self.seed = batch_size, seed
        self.precision, self.compile, self.channels_last = precision, compile, channels_last
        self._compiled: torch.nn.Module | None = None
        self.shared_noise = load_noise(noise_path) if noise_path else None
        self.image_size, self.image_channels = backbone.image_size, backbone.image_channels
        self.register_buffer("cond", torch.empty(0), persistent=False)
        self.prompt_class: Tensor | None = None

    def prepare(self, labels: LabelSet) -> None:
        super().prepare(labels)
        # Conditions once per label set (text embeddings are the expensive part for SD).
        with torch.inference_mode():
            self.cond = self.backbone.encode_conditions(labels).to(self.device)
        self.prompt_class = torch.tensor(labels.prompt_class)

    def text_image_scores(self, images: Tensor, texts: Sequence[str], key: str) -> tuple[Tensor, int]:
        """Negated mean denoising errors (n_images, n_texts) and the NFE spent (image-text matching, Eq. 9).

        Every image and every text share one set of (t, eps) samples, drawn from (seed, ``key``): the
        image score compares errors across images, and shared noise makes those differences paired too.
        Needs a text-conditional backbone (one with ``encode_prompts``).
        """
        saved = self.labels, self.cond, self.prompt_class
        try:
            self.prepare(LabelSet.from_classes(list(texts)))
            records = self.score(images, [key] * len(images))
        finally:
            self.labels, self.cond, self.prompt_class = saved
        return -torch.tensor([r["errors"] for r in records]), sum(r["nfe"] for r in records)

    # ---- the random part: from (seed, image id) only -------------------------------------------
    def plan(self, image_id: str, x0_shape: torch.Size) -> _ImagePlan:
        """The timestep pool and noise of one image: a function of (seed, image id) only."""
        pool = self.pruning.pool_size(self.sampler)
        generator = self.generator(self.seed, image_id)
        timesteps = torch.tensor(self.sampler(pool, self.backbone.process.num_train_timesteps, generator))
        n_noise = pool * self.n_trials
        if self.shared_noise is not None:
            if self.shared_noise.shape[0] < n_noise or self.shared_noise.shape[1:] != x0_shape:
                raise ValueError(f"the noise file holds {tuple(self.shared_noise.shape)}; this schedule needs at "
                                 f"least ({n_noise}, {', '.join(map(str, x0_shape))})")
            noise = self.shared_noise[:n_noise]
        else:
            noise = torch.randn((n_noise, *x0_shape), generator=generator)
        return _ImagePlan(timesteps, noise)

    # ---- the loop ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def score(self, images: Tensor, ids: list[str]) -> list[dict[str, Any]]:
        if self.channels_last:  # a no-op once converted; cheap enough to make sure on every call
            self.backbone.to(memory_format=torch.channels_last)
        x0 = self.backbone.encode_images(images).float()  # each image encoded once
        plans = [self.plan(i, x0.shape[1:]) for i in ids]
        n_img, n_cand = len(ids), self.cond.shape[0]
        pool = plans[0].timesteps.numel()
        errors = torch.full((n_img, n_cand, pool * self.n_trials), float("nan"))
        pruned_at = torch.full((n_img, n_cand), -1, dtype=torch.long)
        alive = [torch.arange(n_cand) for _ in ids]
        nfe = torch.zeros(n_img, dtype=torch.long)
        evaluated: list[int] = []  # pool positions in evaluation order: noise index = n_trials * order + trial
        for stage, positions in enumerate(self.pruning.stages(pool)):
            active = [b for b in range(n_img) if stage == 0 or alive[b].numel() > 1]
            if not active:
                break
            first = len(evaluated)
            evaluated += positions
            if positions:  # a stage may add no timestep; it still prunes on the errors so far
                self._evaluate(x0, plans, active, alive, positions, first, errors, nfe)
            seen = torch.tensor([self.n_trials * o + r for o in range(len(evaluated)) for r in range(self.n_trials)])
            for b in active:
                keep = self.pruning.keep(stage, errors[b, alive[b]][:, seen])
                mask = torch.ones(alive[b].numel(), dtype=torch.bool)
                mask[keep] = False
                pruned_at[b, alive[b][mask]] = stage
                alive[b] = alive[b][keep]
        return [self._record(errors[b], alive[b], pruned_at[b], int(nfe[b])) for b in range(n_img)]

    def _evaluate(self, x0: Tensor, plans: list[_ImagePlan], active: list[int], alive: list[Tensor],
                  positions: list[int], first: int, errors: Tensor, nfe: Tensor) -> None:
        """Errors of every alive candidate of every active image at the new positions, in device-sized batches."""
        process = self.backbone.process
        trials = torch.arange(self.n_trials)
        cols = (self.n_trials * (first + torch.arange(len(positions)))[:, None] + trials).flatten()
        pos = torch.tensor(positions).repeat_interleave(self.n_trials)
        # One x_t per (image, t, eps), shared by every candidate: queries index into these rows.
        u_img = torch.tensor(active).repeat_interleave(len(cols))
        u_t = torch.cat([plans[b].timesteps[pos] for b in active])
        u_eps = torch.cat([plans[b].noise[cols] for b in active])
        u_col = cols.repeat(len(active))
        q_u = torch.cat([torch.arange(i * len(cols), (i + 1) * len(cols)).repeat_interleave(alive[b].numel())
                         for i, b in enumerate(active)])
        q_c = torch.cat([alive[b].repeat(len(cols)) for b in active])

        device = x0.device
        u_t, u_eps, u_img_dev = u_t.to(device), u_eps.to(device), u_img.to(device)
        # Noising in float32 whatever the model's precision (see VPProcess).
        with torch.autocast(device.type, enabled=False):
            u_xt = process.add_noise(x0[u_img_dev], u_eps, u_t)
        out = torch.empty(len(q_u))
        s = 0
        while s < len(q_u):
            n = self.batch_size
            u, c = q_u[s : s + n].to(device), q_c[s : s + n].to(device)
            x_t, t = u_xt[u], u_t[u]
            try:
                err = self._errors(x0, u_img_dev[u], x_t, t, self.cond[c], u_eps[u])
            except OUT_OF_MEMORY:
                self._back_off(device)
                continue
            out[s : s + len(u)] = err.cpu()
            s += len(u)
        errors[u_img[q_u], q_c, u_col[q_u]] = out
        nfe += torch.bincount(u_img[q_u], minlength=nfe.numel())

    def _errors(self, x0: Tensor, image: Tensor, x_t: Tensor, t: Tensor, cond: Tensor, eps: Tensor) -> Tensor:
        """The objective per query: the error of the eps prediction, or the variational bound terms."""
        process = self.backbone.process
        if self.loss not in OBJECTIVES:
            return denoising_error(process.to_epsilon(self._denoise(x_t, t, cond).float(), x_t, t), eps, self.loss)
        prediction, v = self._denoise(x_t, t, cond, variance=True)
        eps_hat = process.to_epsilon(prediction.float(), x_t, t)
        vlb = vlb_terms(process, x0[image], x_t, t, eps_hat, v.float())
        return vlb if self.loss == "vlb" else denoising_error(eps_hat, eps, "l2") + vlb

    def _denoise(self, x_t: Tensor, t: Tensor, cond: Tensor, variance: bool = False) -> Any:
        """The denoiser, under autocast when ``precision`` asks for it (the noising stays float32).

        ``variance``: also the learned variance, as (prediction, v) (not through ``torch.compile``).
        """
        if self._compiled is None:
            # Not a submodule (nn.Module.__setattr__ would register it and double the state dict).
            object.__setattr__(self, "_compiled", torch.compile(self.backbone) if self.compile else self.backbone)
        if self.channels_last and x_t.dim() == 4:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        dtype = PRECISIONS[self.precision]
        with torch.autocast(x_t.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return self.backbone.forward_with_variance(x_t, t, cond) if variance else self._compiled(x_t, t, cond)

    def _back_off(self, device: torch.device) -> None:
        """Out of memory: halve the batch and retry (results do not depend on the batch size)."""
        if self.batch_size == 1:
            raise OUT_OF_MEMORY("out of memory with batch_size 1: use a smaller model or precision")
        self.batch_size //= 2
        warnings.warn(f"out of memory: diffusion-classifier batch_size lowered to {self.batch_size}", stacklevel=3)
        if device.type == "cuda":
            torch.cuda.empty_cache()

    def _stage_errors(self, errors: Tensor, pruned_at: Tensor) -> Tensor:
        """(n_stages, n_classes): per race stage, each present class's best prompt error over the samples
        shared by every prompt still present (``inf`` for classes gone); see ``stagewise_probs``."""
        exits = sorted(set(pruned_at[pruned_at >= 0].tolist()))
        rows = []
        for stage in [*exits, None]:
            present = (pruned_at == -1) if stage is None else (pruned_at == -1) | (pruned_at >= stage)
            members = present.nonzero().squeeze(1)
            shared = ~errors[members].isnan().any(0)
            prompt_error = errors[members][:, shared].mean(1)
            rows.append(torch.full((self.labels.num_classes,), float("inf")).scatter_reduce(
                0, self.prompt_class[members], prompt_error, reduce="amin"))
        return torch.stack(rows)

    def _record(self, errors: Tensor, alive: Tensor, pruned_at: Tensor, nfe: int) -> dict[str, Any]:
        """Per-class results: a class's error is its best prompt's mean error over its samples."""
        prompt_error = errors.nanmean(dim=1)
        n_classes = self.labels.num_classes
        class_error = torch.full((n_classes,), float("inf")).scatter_reduce(
            0, self.prompt_class, prompt_error, reduce="amin")
        winner = alive[prompt_error[alive].argmin()]
        stage_errors = self._stage_errors(errors, pruned_at)
        probs = stagewise_probs(stage_errors, self.temperature).float()
        # A class left the race when its last prompt did; None if one of its prompts is still alive.
        survived = torch.zeros(n_classes, dtype=torch.bool)
        survived[self.prompt_class[alive]] = True
        class_stage = torch.full((n_classes,), -1, dtype=torch.long).scatter_reduce(
            0, self.prompt_class, pruned_at, reduce="amax", include_self=False)
        record: dict[str, Any] = {
            "prediction": int(self.prompt_class[winner]),
            "probs": probs.tolist(),
            "errors": class_error.tolist(),
            "pruned_at": [None if survived[k] else int(class_stage[k]) for k in range(n_classes)],
            "nfe": nfe,
            # what probs are computed from (dcbench.diffusion.posterior); `dcbench calibrate` refits tau on it
            "stage_errors": [[e if e != float("inf") else None for e in row] for row in stage_errors.tolist()],
        }
        if len(self.labels.prompts) != n_classes:
            record["prompt"] = int(winner)
            record["prompt_errors"] = prompt_error.tolist()
        return record


@SCORERS.register("diffusion-classifier")
def diffusion_classifier(backbone: str | Mapping[str, Any] = "unet-class",
                         sampler: str | Mapping[str, Any] = "even",
                         pruning: str | Mapping[str, Any] = "none", loss: str = "l2", n_trials: int = 1,
                         temperature: float = 1.0, batch_size: int = 256, seed: int = 0,
                         noise_path: str | None = None, precision: str = "fp32",
                         compile: bool = False, channels_last: bool = True) -> DiffusionClassifier:
    """Diffusion Classifier over any registered backbone, sampler and pruning schedule."""
    return DiffusionClassifier(BACKBONES.build(backbone), SAMPLERS.build(sampler), PRUNING.build(pruning),
                               loss=loss, n_trials=n_trials, temperature=temperature, batch_size=batch_size,
                               seed=seed, noise_path=noise_path, precision=precision, compile=compile,
                               channels_last=channels_last)
