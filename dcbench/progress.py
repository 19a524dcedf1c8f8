"""Lightning's progress bar, showing items done and running accuracy while predicting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

__all__ = ["AccuracyProgressBar", "is_correct"]


def is_correct(record: dict[str, Any]) -> bool:
    """A classification record's prediction is its label."""
    return record["prediction"] == record["label"]


class AccuracyProgressBar(TQDMProgressBar):
    """Adds ``done=N acc=0.987`` (this run's records, resumed ones included) to the predict bar.

    ``hit`` says whether a record counts as correct (e.g. a pair's group score), ``name`` what to call the rate.
    """

    def __init__(self, done: int = 0, correct: int = 0, hit: Callable[[dict[str, Any]], bool] = is_correct,
                 name: str = "acc", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.done, self.correct, self.hit, self.name = done, correct, hit, name

    def on_predict_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                             batch_idx: int, dataloader_idx: int = 0) -> None:
        super().on_predict_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
        self.done += len(outputs)
        self.correct += sum(self.hit(r) for r in outputs)
        if self.predict_progress_bar is not None:
            rate = f"{self.correct / max(1, self.done):.3f}"
            self.predict_progress_bar.set_postfix(done=self.done, **{self.name: rate})
