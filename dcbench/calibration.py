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

from dcbench.diffusion.posterior import stagewise_probs
from dcbench.metrics import ECE_BINS
from dcbench.writers import RunDirectoryError

__all__ = ["calibrate_run", "fit_temperature", "record_stage_errors"]


def record_stage_errors(records: Sequence[dict[str, Any]]) -> tuple[Tensor, Tensor]:
    """(stage_errors (n, n_stages, n_classes), labels) of Diffusion Classifier records, padded with inf."""
    if not records:
        raise RunDirectoryError("no records to calibrate on: the run scored no image yet")
    if "stage_errors" not in records[0] or "label" not in records[0]:
        raise RunDirectoryError("the records carry no 'stage_errors': calibrate reads a Diffusion Classifier "
                                "classification run (task: classification) made by this version of dcbench")
    n_stages = max(len(r["stage_errors"]) for r in records)
    n_classes = len(records[0]["stage_errors"][0])
    errors = torch.full((len(records), n_stages, n_classes), float("inf"), dtype=torch.float64)
    for i, r in enumerate(records):
        rows = torch.tensor([[float("inf") if e is None else e for e in row] for row in r["stage_errors"]],
                            dtype=torch.float64)
        errors[i, : len(rows)] = rows
    return errors, torch.tensor([r["label"] for r in records])


def _nll(stage_errors: Tensor, labels: Tensor, tau: float) -> float:
    probs = stagewise_probs(stage_errors, tau)
    return -probs.gather(1, labels[:, None]).clamp_min(1e-300).log().mean().item()


def fit_temperature(stage_errors: Tensor, labels: Tensor, low: float = 1e-6, high: float = 1e6) -> float:
    """The tau in [low, high] minimising the mean NLL of the classifier's probabilities (golden-section
    search on log tau; without pruning the NLL is convex in 1 / tau, so the search finds the minimum)."""
    a, b = math.log(low), math.log(high)
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = _nll(stage_errors, labels, math.exp(c)), _nll(stage_errors, labels, math.exp(d))
    while b - a > 1e-4:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = _nll(stage_errors, labels, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = _nll(stage_errors, labels, math.exp(d))
    return math.exp((a + b) / 2)


def _ece(stage_errors: Tensor, labels: Tensor, tau: float) -> float:
    probs = stagewise_probs(stage_errors, tau).float()
    return multiclass_calibration_error(probs, labels, num_classes=probs.shape[1], n_bins=ECE_BINS).item()


def calibrate_run(run_dir: str | Path) -> dict[str, float]:
    """Fit the temperature on a classification run directory's records.jsonl; returns tau, NLL and ECE."""
    path = Path(run_dir) / "records.jsonl"
    if not path.is_file():
        raise RunDirectoryError(f"{path} not found: run `dcbench predict --run-dir {run_dir}` first")
    with path.open() as f:
        records = [json.loads(line) for line in f if line.strip()]
    stage_errors, labels = record_stage_errors(records)
    tau = fit_temperature(stage_errors, labels)
    return {"n_images": len(records), "temperature": tau, "nll": _nll(stage_errors, labels, tau),
            "ece": _ece(stage_errors, labels, tau)}
