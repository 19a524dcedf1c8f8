"""Metrics over a run's records (torchmetrics): top-1, top-5, mean per-class accuracy, ECE, cost."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_calibration_error

__all__ = ["classification_metrics"]

ECE_BINS = 15


def classification_metrics(records: Sequence[dict[str, Any]], num_classes: int,
                           held_out: Sequence[int] | None = None) -> dict[str, Any]:
    """The summary written to ``metrics.json``. Top-5 only with at least 5 classes.

    ``held_out``: classes never seen in training (zero-shot combinations); their images' top-1 is
    reported as ``top1_held_out``, the other images' as ``top1_seen``.
    """
    if not records:
        raise ValueError("no records: nothing was scored")
    target = torch.tensor([r["label"] for r in records])
    preds = torch.tensor([r["prediction"] for r in records])
    probs = torch.tensor([r["probs"] for r in records], dtype=torch.float64).float()
    per_class = multiclass_accuracy(preds, target, num_classes=num_classes, average="none")
    present = torch.bincount(target, minlength=num_classes) > 0
    metrics: dict[str, Any] = {
        "n_images": len(records),
        "top1": multiclass_accuracy(preds, target, num_classes=num_classes, average="micro").item(),
        # mean over the classes that occur in the test set (absent classes have no accuracy)
        "mean_per_class": per_class[present].mean().item(),
        "ece": multiclass_calibration_error(probs, target, num_classes=num_classes, n_bins=ECE_BINS).item(),
        "nfe_per_image": sum(r["nfe"] for r in records) / len(records),
        "seconds_per_image": sum(r["seconds"] for r in records) / len(records),
    }
    if num_classes >= 5:
        metrics["top5"] = multiclass_accuracy(probs, target, num_classes=num_classes, top_k=5, average="micro").item()
    if held_out:
        unseen = torch.isin(target, torch.tensor(list(held_out)))
        for key, mask in (("top1_held_out", unseen), ("top1_seen", ~unseen)):
            if mask.any():
                metrics[key] = (preds[mask] == target[mask]).float().mean().item()
    accuracies = zip(per_class.tolist(), present.tolist(), strict=True)
    metrics["per_class_accuracy"] = [acc if seen else None for acc, seen in accuracies]
    return metrics
