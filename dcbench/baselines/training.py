"""Training a baseline's classifier: one LightningModule and one resumable ``Trainer.fit`` for both baselines.

The inputs are tensors prepared once (features, or generated images kept as uint8 pixels until they
reach the device); a fraction is held out for validation. Lightning checkpoints go to
``DIR/checkpoints`` (``last.ckpt``, every ``checkpoint_every`` steps); a rerun resumes from there,
loading with ``weights_only=True`` (plain tensors and numbers only).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, Subset, TensorDataset

from dcbench.training.optim import warmup_cosine

__all__ = ["CHECKPOINT_DIR", "ClassifierTraining", "TrainOptions", "accuracy", "model_input", "train_classifier"]

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"


@dataclass(frozen=True)
class TrainOptions:
    """How a baseline's classifier is trained (``scorer.fit.train`` in a config)."""

    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    label_smoothing: float = 0.0
    #: fraction of the prepared examples held out to report a validation accuracy (0: none)
    val_fraction: float = 0.1
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1 or not 0 <= self.val_fraction < 1:
            raise ValueError("train: steps, batch_size and checkpoint_every must be >= 1 and 0 <= val_fraction < 1")


def model_input(inputs: Tensor) -> Tensor:
    """uint8 inputs are images (stored compactly, 4x smaller than float): -> [-1, 1]; others pass unchanged."""
    return inputs.float() / 127.5 - 1 if inputs.dtype == torch.uint8 else inputs


class ClassifierTraining(L.LightningModule):
    """Cross-entropy training of ``model`` (inputs -> logits) with AdamW and a warm-up cosine schedule."""

    def __init__(self, model: nn.Module, options: TrainOptions) -> None:
        super().__init__()
        self.model, self.options = model, options

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        inputs, targets = batch
        logits = self.model(model_input(inputs))
        loss = F.cross_entropy(logits, targets, label_smoothing=self.options.label_smoothing if stage == "train" else 0)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train")
        self.log(f"{stage}/acc", (logits.argmax(1) == targets).float().mean(), prog_bar=True)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.options.lr, weight_decay=self.options.weight_decay)
        return warmup_cosine(opt, self.options.warmup_steps, self.options.steps)


@torch.inference_mode()
def accuracy(model: nn.Module, examples: Subset, batch_size: int = 512) -> float | None:
    """Top-1 accuracy of ``model`` (in eval mode, on its device) on (input, target) examples; None if none."""
    if not len(examples):
        return None
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    hits = sum(int((model(model_input(inputs.to(device))).argmax(1).cpu() == targets).sum())
               for inputs, targets in _batches(examples, batch_size))
    model.train(was_training)
    return round(hits / len(examples), 4)


def _batches(examples: Subset, batch_size: int, shuffle: torch.Generator | None = None) -> DataLoader:
    """Whole batches indexed at once (one gather per batch, not one per example: the tensors are in memory)."""
    order = RandomSampler(examples, generator=shuffle) if shuffle is not None else SequentialSampler(examples)
    drop_last = shuffle is not None and len(examples) > batch_size  # equal steps per epoch while training
    return DataLoader(examples, sampler=BatchSampler(order, batch_size, drop_last), batch_size=None)


def _split(n: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(n * val_fraction)
    return order[n_val:], order[:n_val]


def _resume_step(checkpoint: Path) -> int:
    # Loaded the way Lightning will load it: plain tensors and containers only.
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"])


def train_classifier(model: nn.Module, inputs: Tensor, targets: Tensor, options: TrainOptions, run_dir: Path, *,
                     seed: int, trainer_options: dict[str, Any] | None = None, logger: Any = False,
                     callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Train ``model`` on (inputs, targets) with ``Trainer.fit``, resuming from ``run_dir/checkpoints/last.ckpt``.

    Returns the training record: the options, the seed, the step it resumed from, the wall seconds of
    this call and the final train and validation accuracies.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    train_idx, val_idx = _split(len(targets), options.val_fraction, seed)
    examples = TensorDataset(inputs, targets)
    train, val = Subset(examples, train_idx.tolist()), Subset(examples, val_idx.tolist())
    loader = _batches(train, options.batch_size, shuffle=torch.Generator().manual_seed(seed))
    val_loader = _batches(val, options.batch_size) if len(val) else None
    checkpoints = run_dir / CHECKPOINT_DIR
    saver = ModelCheckpoint(dirpath=checkpoints, save_top_k=0, save_last=True,
                            every_n_train_steps=options.checkpoint_every, enable_version_counter=False)
    interval = min(options.checkpoint_every, options.steps)
    settings: dict[str, Any] = {"accelerator": "auto", "devices": 1, **(trainer_options or {})}
    settings.update(max_steps=options.steps, callbacks=[saver, *callbacks], logger=logger, num_sanity_val_steps=0,
                    enable_model_summary=False, log_every_n_steps=min(50, interval))
    if val_loader is not None:  # validate every `interval` steps, across epoch boundaries
        settings.update(val_check_interval=interval, check_val_every_n_epoch=None)
    try:
        trainer = L.Trainer(**settings)
    except TypeError as err:
        from dcbench.config import ConfigError

        raise ConfigError(f"bad trainer option: {err}. The trainer section takes lightning.Trainer arguments") from err
    last = checkpoints / LAST
    resume = last if last.is_file() else None
    resumed_from = _resume_step(resume) if resume else 0
    start = time.perf_counter()
    with warnings.catch_warnings():  # val_fraction 0 is a choice, not a mistake
        warnings.filterwarnings("ignore", message=r"You defined a `validation_step` but have no `val_dataloader`")
        trainer.fit(ClassifierTraining(model, options), loader, val_loader, ckpt_path=resume, weights_only=True)
    wall = time.perf_counter() - start
    return {**asdict(options), "seed": seed, "resumed_from_step": resumed_from,
            "final_step": trainer.global_step, "wall_seconds": round(wall, 1), "threads": torch.get_num_threads(),
            "train_accuracy": accuracy(model, train), "val_accuracy": accuracy(model, val)}
