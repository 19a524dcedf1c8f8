"""Temperature scaling from a finished Diffusion Classifier run: the ``temperature`` tau that makes
p(c|x) = softmax(-error / tau) best calibrated (lowest NLL).

Temperature never changes a prediction, only the probabilities (and so ECE). Fit it on a run over images
the model may have seen (a train or validation split), never on the test split it will be judged on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchmetrics.functional.classification import multiclass_calibration_error

from dcbench.metrics import ECE_BINS
from dcbench.writers import RunDirectoryError

__all__ = ["calibrate_run", "fit_temperature", "record_scores"]


def record_scores(records: Sequence[dict[str, Any]]) -> tuple[Tensor, Tensor]:
    """(scores, labels) of Diffusion Classifier records: scores are minus the per-class errors."""
    if not records:
        raise RunDirectoryError("no records to calibrate on: the run scored no image yet")
    if "errors" not in records[0] or "label" not in records[0]:
        raise RunDirectoryError("the records carry no per-class 'errors': calibrate runs a Diffusion Classifier "
                         "classification run (task: classification)")
    scores = -torch.tensor([r["errors"] for r in records], dtype=torch.float64)
    return scores, torch.tensor([r["label"] for r in records])


def _nll(scores: Tensor, labels: Tensor, tau: float) -> float:
    return torch.nn.functional.cross_entropy(scores / tau, labels).item()


def fit_temperature(scores: Tensor, labels: Tensor, low: float = 1e-6, high: float = 1e6) -> float:
    """The tau in [low, high] minimising the mean NLL of softmax(scores / tau) (golden-section on log tau).

    The NLL is unimodal in 1 / tau for fixed scores (it is convex in the inverse temperature), so a
    one-dimensional search is exact up to its tolerance.
    """
    a, b = math.log(low), math.log(high)
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = _nll(scores, labels, math.exp(c)), _nll(scores, labels, math.exp(d))
    while b - a > 1e-4:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = _nll(scores, labels, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = _nll(scores, labels, math.exp(d))
    return math.exp((a + b) / 2)


def _ece(scores: Tensor, labels: Tensor, tau: float) -> float:
    probs = torch.softmax(scores / tau, dim=1).float()
    return multiclass_calibration_error(probs, labels, num_classes=scores.shape[1], n_bins=ECE_BINS).item()


def calibrate_run(run_dir: str | Path) -> dict[str, float]:
    """Fit the temperature on a classification run directory's records.jsonl; returns tau, NLL and ECE."""
    path = Path(run_dir) / "records.jsonl"
    if not path.is_file():
        raise RunDirectoryError(f"{path} not found: run `dcbench predict --run-dir {run_dir}` first")
    with path.open() as f:
        records = [json.loads(line) for line in f if line.strip()]
    scores, labels = record_scores(records)
    tau = fit_temperature(scores, labels)
    return {"n_images": len(records), "temperature": tau, "nll": _nll(scores, labels, tau),
            "ece": _ece(scores, labels, tau)}
