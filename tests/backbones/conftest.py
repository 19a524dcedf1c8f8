"""Helpers for the backbone tests; the tiny model directories themselves are session fixtures in tests/conftest.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor


@pytest.fixture
def images() -> Tensor:
    """Two random 16x16 RGB images in [-1, 1]."""
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.fixture
def run_tiny_predict(tiny_imagefolder: Path, tmp_path: Path) -> Callable[..., tuple[dict[str, Any], list[dict]]]:
    """``run(backbone, pruning, image_size, templates=None)`` -> (metrics.json, records) of ``cli.run_predict``.

    The Diffusion Classifier with even timesteps over the tiny image folder, on CPU.
    """

    def run(backbone: dict[str, Any], pruning: dict[str, Any], image_size: int,
            templates: list[str] | None = None) -> tuple[dict[str, Any], list[dict]]:
        from dcbench.cli import run_predict

        data: dict[str, Any] = {"dataset": {"name": "imagefolder", "root": str(tiny_imagefolder)},
                                "image_size": image_size, "batch_size": 4}
        if templates is not None:
            data["templates"] = templates
        config = {
            "seed": 0,
            "scorer": {"name": "diffusion-classifier", "backbone": backbone, "sampler": {"name": "even"},
                       "pruning": pruning, "loss": "l2", "n_trials": 1, "batch_size": 8},
            "data": data,
            "trainer": {"accelerator": "cpu", "devices": 1},
            "logger": "none",
        }
        run_dir = tmp_path / "run"
        run_predict(config, run_dir)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
        return metrics, records

    return run
