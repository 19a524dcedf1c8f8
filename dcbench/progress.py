"""Lightning's progress bar, showing images done and running accuracy while predicting."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

__all__ = ["AccuracyProgressBar"]


class AccuracyProgressBar(TQDMProgressBar):
    """Adds ``images=N acc=0.987`` (this run's records, resumed ones included) to the predict bar."""

    def __init__(self, done: int = 0, correct: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.done, self.correct = done, correct

    def on_predict_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                             batch_idx: int, dataloader_idx: int = 0) -> None:
        super().on_predict_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
        self.done += len(outputs)
        self.correct += sum(r["prediction"] == r["label"] for r in outputs)
        if self.predict_progress_bar is not None:
            self.predict_progress_bar.set_postfix(images=self.done, acc=f"{self.correct / max(1, self.done):.3f}")
