"""What the fitted baselines' scorers share: a classifier loaded from ``dcbench fit-baseline``'s directory.

The classifier's outputs are logits over the classes it was fitted on, which must be the dataset's
classes in the same order; probabilities are their softmax.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from dcbench.data.labels import LabelSet, LabelSetError
from dcbench.scorers.base import Scorer

__all__ = ["FittedScorer"]


class FittedScorer(Scorer):
    """A scorer whose classifier was trained by ``dcbench fit-baseline`` (subclasses say how to get logits).

    Args:
        classes: the class names the classifier was fitted on, in its output order.
        batch_size: images per forward pass.
    """

    #: denoiser evaluations per image at test time
    nfe: int = 0

    def __init__(self, classes: Sequence[str], batch_size: int = 64) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.classes, self.batch_size = tuple(classes), batch_size

    def prepare(self, labels: LabelSet) -> None:
        if tuple(labels.classes) != self.classes:
            pairs = enumerate(zip(self.classes, labels.classes, strict=False))
            differ = [f"{i}: {a!r} vs {b!r}" for i, (a, b) in pairs if a != b][:3]
            raise LabelSetError(
                f"this baseline was fitted on {len(self.classes)} classes, and the dataset has "
                f"{labels.num_classes} (first differences: {differ or 'the count'}); classes must match in "
                "name and order. Fit the baseline on this dataset's classes.")
        super().prepare(labels)

    @abstractmethod
    def logits(self, images: Tensor, ids: list[str]) -> Tensor:
        """(B, num_classes) logits for images in [-1, 1] with their ids."""

    def score(self, images: Tensor, ids: list[str]) -> list[dict[str, Any]]:
        with torch.inference_mode():
            step = self.batch_size
            logits = torch.cat([self.logits(images[s : s + step].to(self.device), ids[s : s + step])
                                for s in range(0, len(ids), step)]).float().cpu()
        probs = torch.softmax(logits, dim=1)
        return [{"prediction": int(p.argmax()), "probs": p.tolist(), "logits": z.tolist(), "nfe": self.nfe}
                for p, z in zip(probs, logits, strict=True)]
