"""Denoiser training (the simple DDPM loss; with learned variance, improved DDPM's hybrid loss) and the embedded
digits recipes (Lightning ``Trainer.fit``)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from dcbench.backbones.base import split_learned_variance
from dcbench.diffusion.process import VPProcess
from dcbench.diffusion.vlb import vlb_terms
from dcbench.embedded import DIGITS_SCHEDULER_CONFIG, DIGITS_UNET_CONFIG
from dcbench.training.optim import warmup_cosine

__all__ = ["DenoiserTraining", "train_digits"]


class DenoiserTraining(L.LightningModule):
    """Trains a class-conditional UNet2DModel with the simple (uniform-t, eps) DDPM loss, keeping an EMA copy.

    A UNet with twice as many output channels as input channels learns its variance too, with the hybrid
    loss of improved DDPM that DiT uses: the simple loss plus the variational bound terms, the bound
    seeing the eps prediction detached (so the mean learns from the simple loss alone, the variance
    from the bound).
    """

    def __init__(self, unet: torch.nn.Module, process: VPProcess, lr: float = 2e-3, warmup_steps: int = 200,
                 ema_decay: float = 0.999) -> None:
        super().__init__()
        self.unet = unet
        self.ema = copy.deepcopy(unet).requires_grad_(False)
        self.process = process
        self.lr, self.warmup_steps, self.ema_decay = lr, warmup_steps, ema_decay

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> x0 in the space the model diffuses (pixels here)."""
        return images

    def condition(self, cond: Any) -> dict[str, Any]:
        """The batch's conditions -> keyword arguments of the network (class ids here)."""
        return {"class_labels": cond}

    def training_step(self, batch: tuple[torch.Tensor, Any], batch_idx: int) -> torch.Tensor:
        images, cond = batch
        x0 = self.encode_images(images)
        t = torch.randint(0, self.process.num_train_timesteps, (x0.shape[0],), device=x0.device)
        eps = torch.randn_like(x0)
        x_t = self.process.add_noise(x0, eps, t)
        out = self.unet(x_t, t, **self.condition(cond)).sample
        prediction, v = split_learned_variance(out, x0.shape[1])
        loss = F.mse_loss(prediction, self.process.target(x0, eps, t))
        if v is not None:
            eps_hat = self.process.to_epsilon(prediction.detach(), x_t, t)
            vb = vlb_terms(self.process, x0, x_t, t, eps_hat, v).mean()
            self.log("train/vb", vb)
            loss = loss + vb
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.unet.parameters(), strict=True):
                e.lerp_(p, 1 - self.ema_decay)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.unet.parameters(), lr=self.lr, weight_decay=0.0)
        return warmup_cosine(opt, self.warmup_steps, max(self.trainer.max_steps, 1))


def _digits_tensors(split: str) -> TensorDataset:
    from dcbench.data.digits import DigitsDataset
    from dcbench.data.transforms import model_input_transform

    ds = DigitsDataset(split)
    transform = model_input_transform(None, channels=1)
    images, labels = zip(*(ds.load(i) for i in range(len(ds))), strict=True)
    return TensorDataset(torch.stack([transform(im) for im in images]), torch.tensor(labels))


def train_digits(out: str | Path, steps: int = 6000, batch_size: int = 128, seed: int = 0, lr: float = 2e-3,
                 progress: bool = True, learned_variance: bool = False) -> dict[str, Any]:
    """Train the embedded digits model from scratch and save it to ``out``; returns the training record.

    ``learned_variance``: the ``digits-lv`` model, which also outputs a learned variance (the vlb objectives).
    """
    from diffusers import DDPMScheduler, UNet2DModel

    from dcbench.data.digits import DigitsDataset

    L.seed_everything(seed, workers=True, verbose=False)
    # "learned_range": diffusers' samplers then split the 2C-channel output into eps and v, as DiT's do
    scheduler = DDPMScheduler(**DIGITS_SCHEDULER_CONFIG,
                              **({"variance_type": "learned_range"} if learned_variance else {}))
    unet = UNet2DModel(**{**DIGITS_UNET_CONFIG, "out_channels": 2 if learned_variance else 1})
    module = DenoiserTraining(unet, VPProcess.from_scheduler(scheduler), lr=lr)
    loader = DataLoader(_digits_tensors("train"), batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=progress, enable_model_summary=False, log_every_n_steps=50)
    start = time.perf_counter()
    trainer.fit(module, loader)
    wall = time.perf_counter() - start

    out = Path(out)
    module.ema.save_pretrained(out / "unet")
    scheduler.save_pretrained(out / "scheduler")
    record = {
        "classes": DigitsDataset.classes,
        "training": {"command": f"dcbench train-embedded {'digits-lv' if learned_variance else 'digits'} --steps "
                                f"{steps} --seed {seed} --out DIR",
                     "loss": "simple + variational bound (hybrid)" if learned_variance else "simple",
                     "dataset": "digits (train split, 1437 images)", "steps": steps, "batch_size": batch_size,
                     "lr": lr, "seed": seed, "ema_decay": module.ema_decay, "wall_seconds": round(wall, 1),
                     "torch": torch.__version__, "threads": torch.get_num_threads(),
                     "parameters": sum(p.numel() for p in unet.parameters())},
    }
    (out / "dcbench.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
