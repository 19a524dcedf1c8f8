"""Contrastive image-text training (CLIP's symmetric InfoNCE) for open_clip models."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dcbench.training.optim import warmup_cosine

__all__ = ["ContrastiveTraining", "contrastive_loss"]


def contrastive_loss(image_features: Tensor, text_features: Tensor, logit_scale: Tensor, tokens: Tensor) -> Tensor:
    """CLIP's symmetric cross-entropy, with every identical caption in the batch counted as a positive.

    A small world repeats captions within a batch ("a red circle on the left"); plain InfoNCE would
    push an image away from its own caption's duplicates.
    """
    logits = logit_scale.exp() * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    same = (tokens.unsqueeze(1) == tokens.unsqueeze(0)).all(-1).float()
    targets = same / same.sum(1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets.T)) / 2


class ContrastiveTraining(L.LightningModule):
    """Trains an open_clip model from scratch on batches of (images, token ids)."""

    def __init__(self, clip: nn.Module, lr: float = 1e-3, weight_decay: float = 0.1, warmup_steps: int = 100) -> None:
        super().__init__()
        self.clip = clip
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, tokens = batch
        loss = contrastive_loss(self.clip.encode_image(images), self.clip.encode_text(tokens),
                                self.clip.logit_scale, tokens)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        with torch.no_grad():  # CLIP clamps the learned temperature at 100
            self.clip.logit_scale.clamp_(0, 4.6052)

    def configure_optimizers(self) -> Any:
        # No weight decay on gains, biases, embeddings' positions and the temperature (as open_clip trains).
        decay, no_decay = [], []
        for name, p in self.clip.named_parameters():
            (no_decay if p.ndim < 2 or "positional_embedding" in name or "logit_scale" in name else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.lr)
        return warmup_cosine(opt, self.warmup_steps, max(self.trainer.max_steps, 1))
