"""Recipes for the shapes world's two embedded models, trained on the same captioned train split.

1. ``train_world_clip``: a tiny open_clip CLIP, contrastively (the CLIP baseline);
2. ``train_world_unet``: a text-conditional UNet on the frozen text tower of that CLIP (the diffusion
   model every diffusion-based scorer uses). Captions are dropped 10% of the time so that the model
   also learns p(x) (classifier-free guidance, used when generating synthetic training data).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from dcbench.data.transforms import clip_normalize
from dcbench.embedded import WORLD_CLIP_CONFIG, WORLD_PATCH_SIZE, WORLD_SCHEDULER_CONFIG, WORLD_UNET_CONFIG
from dcbench.training.contrastive import ContrastiveTraining
from dcbench.training.denoiser import DenoiserTraining

__all__ = ["CaptionTensors", "TextDenoiserTraining", "save_open_clip", "train_world_clip", "train_world_unet"]

CLIP_DIR = "clip"


class CaptionTensors(Dataset):
    """The world's train corpus rendered once: images in [-1, 1] and caption token ids."""

    def __init__(self, n: int, seed: int, tokenizer: Any) -> None:
        from dcbench.data.world import CaptionedShapes

        corpus = CaptionedShapes(n, seed)
        images, captions = zip(*(corpus[i] for i in range(n)), strict=True)
        self.images = torch.from_numpy(np.stack([np.asarray(im) for im in images])).permute(0, 3, 1, 2).contiguous()
        self.tokens = tokenizer(list(captions))
        self.captions = list(captions)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index].float() / 127.5 - 1, self.tokens[index]


class _CLIPPixels(ContrastiveTraining):
    """Contrastive training on [-1, 1] images, standardised as the CLIP scorer does at inference."""

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, tokens = batch
        mean = torch.tensor(self.clip.visual.image_mean, device=images.device)
        std = torch.tensor(self.clip.visual.image_std, device=images.device)
        return super().training_step((clip_normalize(images, mean, std), tokens), batch_idx)


class TextDenoiserTraining(DenoiserTraining):
    """The DDPM loss for a text-conditional backbone; its text tower stays frozen."""

    def __init__(self, backbone: Any, empty_tokens: Tensor, cond_dropout: float = 0.1, **kwargs: Any) -> None:
        super().__init__(backbone.unet.train().requires_grad_(True), backbone.process, **kwargs)
        self.backbone = backbone
        self.cond_dropout = cond_dropout
        self.register_buffer("empty_tokens", empty_tokens.reshape(1, -1), persistent=False)

    def encode_images(self, images: Tensor) -> Tensor:
        return self.backbone.encode_images(images)

    def condition(self, tokens: Tensor) -> dict[str, Any]:
        drop = torch.rand(tokens.shape[0], device=tokens.device) < self.cond_dropout
        tokens = torch.where(drop.unsqueeze(1), self.empty_tokens, tokens)
        with torch.no_grad():
            return {"encoder_hidden_states": self.backbone.text_states(tokens)}


def _fit(module: L.LightningModule, data: Dataset, steps: int, batch_size: int, seed: int, progress: bool) -> float:
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=progress, enable_model_summary=False, log_every_n_steps=50)
    start = time.perf_counter()
    trainer.fit(module, loader)
    return round(time.perf_counter() - start, 1)


def _record(out: Path, part: str, entry: dict[str, Any]) -> dict[str, Any]:
    file = out / "dcbench.json"
    record = json.loads(file.read_text()) if file.is_file() else {}
    record.setdefault("patch_size", WORLD_PATCH_SIZE)
    record.setdefault("training", {})[part] = entry
    file.write_text(json.dumps(record, indent=2) + "\n")
    return record


def save_open_clip(clip: torch.nn.Module, model_cfg: dict[str, Any], directory: Path) -> None:
    """open_clip's ``local-dir`` layout: ``open_clip_config.json`` + ``open_clip_model.safetensors``."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg,
              "preprocess_cfg": {"mean": list(clip.visual.image_mean), "std": list(clip.visual.image_std)}}
    (directory / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, directory / "open_clip_model.safetensors")


def train_world_clip(out: str | Path, steps: int = 1500, batch_size: int = 256, n: int = 30000, seed: int = 0,
                     lr: float = 1e-3, progress: bool = True) -> dict[str, Any]:
    """Train the world's CLIP from scratch into ``out/clip``; returns the updated ``dcbench.json``."""
    import open_clip

    from dcbench.openclip import create_from_config

    L.seed_everything(seed, workers=True, verbose=False)
    clip, tokenizer = create_from_config(WORLD_CLIP_CONFIG)
    data = CaptionTensors(n, seed, tokenizer)
    module = _CLIPPixels(clip.train(), lr=lr)
    wall = _fit(module, data, steps, batch_size, seed, progress)
    out = Path(out)
    save_open_clip(clip, WORLD_CLIP_CONFIG, out / CLIP_DIR)
    return _record(out, "clip", {
        "command": f"dcbench train-embedded shapes-world-clip --steps {steps} --seed {seed} --out DIR",
        "data": f"CaptionedShapes(n={n}, seed={seed})", "steps": steps, "batch_size": batch_size, "lr": lr,
        "seed": seed, "wall_seconds": wall, "torch": torch.__version__, "open_clip": open_clip.__version__,
        "threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in clip.parameters())})


def train_world_unet(out: str | Path, steps: int = 3000, batch_size: int = 128, n: int = 30000, seed: int = 0,
                     lr: float = 1e-3, cond_dropout: float = 0.1, progress: bool = True) -> dict[str, Any]:
    """Train the world's text-conditional UNet on the frozen text tower of ``out/clip``."""
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from dcbench.backbones.text_unet import TextUNet
    from dcbench.diffusion.process import VPProcess
    from dcbench.openclip import load_open_clip, load_tokenizer

    out = Path(out)
    if not (out / CLIP_DIR / "open_clip_config.json").is_file():
        raise FileNotFoundError(f"{out / CLIP_DIR} holds no CLIP: train it first with "
                                f"`dcbench train-embedded shapes-world-clip --out {out}`")
    L.seed_everything(seed, workers=True, verbose=False)
    clip_id = f"local-dir:{out / CLIP_DIR}"
    clip, tokenizer = load_open_clip(clip_id), load_tokenizer(clip_id)
    scheduler = DDPMScheduler(**WORLD_SCHEDULER_CONFIG)
    backbone = TextUNet(UNet2DConditionModel(**WORLD_UNET_CONFIG), clip, tokenizer,
                        VPProcess.from_scheduler(scheduler), patch_size=WORLD_PATCH_SIZE)
    module = TextDenoiserTraining(backbone, tokenizer([""])[0], cond_dropout=cond_dropout, lr=lr)
    wall = _fit(module, CaptionTensors(n, seed, tokenizer), steps, batch_size, seed, progress)
    module.ema.save_pretrained(out / "unet")
    scheduler.save_pretrained(out / "scheduler")
    return _record(out, "unet", {
        "command": f"dcbench train-embedded shapes-world-unet --steps {steps} --seed {seed} --out DIR",
        "data": f"CaptionedShapes(n={n}, seed={seed})", "steps": steps, "batch_size": batch_size, "lr": lr,
        "seed": seed, "cond_dropout": cond_dropout, "ema_decay": module.ema_decay, "wall_seconds": wall,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in backbone.unet.parameters())})
