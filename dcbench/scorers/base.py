"""What every scorer is: a LightningModule whose ``predict_step`` returns one record per image.

A record is a plain dict (JSON-ready) with at least ``id``, ``label``, ``prediction``, ``probs``
(in the order of ``labels.classes``), ``nfe`` and ``seconds``; scorers add their own fields.
"""

from __future__ import annotations

import hashlib
import time
from abc import abstractmethod
from typing import Any

import lightning as L
import torch
from torch import Tensor

from dcbench.data.labels import LabelSet

__all__ = ["Scorer", "image_seed"]


def image_seed(seed: int, image_id: str) -> int:
    """A 63-bit seed from (run seed, image id) alone: results do not depend on batch, order or rank."""
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class Scorer(L.LightningModule):
    """Base of all scorers. The datamodule in use provides ``labels`` (a :class:`LabelSet`)."""

    #: pixel resolution and channels the scorer wants its images in (None: native size)
    image_size: int | None = None
    image_channels: int = 3

    def __init__(self) -> None:
        super().__init__()
        self.labels: LabelSet | None = None

    def on_predict_start(self) -> None:
        datamodule = self.trainer.datamodule
        if datamodule is None or getattr(datamodule, "labels", None) is None:
            raise RuntimeError("the scorer needs a datamodule with a `labels` attribute (a LabelSet)")
        self.prepare(datamodule.labels)

    def prepare(self, labels: LabelSet) -> None:
        """Called once per label set before scoring (compute text embeddings and the like here)."""
        self.labels = labels

    @abstractmethod
    def score(self, images: Tensor, ids: list[str]) -> list[dict[str, Any]]:
        """Records (without ``id``, ``label``, ``seconds``) for a batch of images in [-1, 1]."""

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        start = time.perf_counter()
        records = self.score(batch["image"], list(batch["id"]))
        seconds = (time.perf_counter() - start) / max(1, len(records))
        labels = batch["label"].tolist()
        return [{"id": i, "label": int(y), **r, "seconds": seconds}
                for i, y, r in zip(batch["id"], labels, records, strict=True)]

    @staticmethod
    def generator(seed: int, image_id: str) -> torch.Generator:
        """The CPU generator every random draw for ``image_id`` comes from."""
        return torch.Generator().manual_seed(image_seed(seed, image_id))
