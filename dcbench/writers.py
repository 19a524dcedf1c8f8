"""The run directory: records written as they come, resume by id, metrics and config at the end.

Layout of ``--run-dir DIR``::

    DIR/config.yaml        the resolved config (a rerun must match it to resume)
    DIR/records.jsonl      one JSON record per image, appended and fsync'ed per batch
                           (records.rank<N>.jsonl for the other processes of a multi-process run)
    DIR/metrics.json       written at the end
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.callbacks import BasePredictionWriter

__all__ = ["PredictionWriter", "RunDirectory", "RunDirectoryError"]


class RunDirectoryError(RuntimeError):
    """The run directory holds results that the current command would mix with others."""


class RunDirectory:
    """Reads and writes one run's files."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    def records_file(self, rank: int) -> Path:
        return self.path / ("records.jsonl" if rank == 0 else f"records.rank{rank}.jsonl")

    def records(self) -> dict[str, dict[str, Any]]:
        """Every finished record by id. A torn last line (a run killed mid-write) is ignored."""
        found: dict[str, dict[str, Any]] = {}
        for file in sorted(self.path.glob("records*.jsonl")):
            for line in file.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                found.setdefault(record["id"], record)
        return found

    def prepare(self, config: dict[str, Any], identity: Callable[[dict[str, Any]], Any],
                overwrite: bool = False) -> None:
        """Create the directory, or check that the finished records in it came from the same setup."""
        self.path.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for file in [*self.path.glob("records*.jsonl"), self.metrics_file]:
                file.unlink(missing_ok=True)
        elif self.config_file.is_file() and self.records():
            old, new = identity(yaml.safe_load(self.config_file.read_text()) or {}), identity(config)
            if old != new:
                changed = sorted(k for k in new if old.get(k) != new.get(k))
                raise RunDirectoryError(
                    f"{self.path} holds records of a run with a different {', '.join(changed)} config; results "
                    "would mix. Use another --run-dir, or pass --overwrite to discard those records.")
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        tmp = self.metrics_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
        tmp.replace(self.metrics_file)


class PredictionWriter(BasePredictionWriter):
    """Appends each batch's records to this process's records file as soon as they exist."""

    def __init__(self, run_dir: RunDirectory) -> None:
        super().__init__(write_interval="batch")
        self.run_dir = run_dir
        self._file: Any = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._file = self.run_dir.records_file(trainer.global_rank).open("a", encoding="utf-8")

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Sequence[int] | None, batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        self._file.write("".join(json.dumps(r) + "\n" for r in prediction))
        self._file.flush()
        os.fsync(self._file.fileno())

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()
        trainer.strategy.barrier("dcbench-records-written")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._close()  # what was written stays written

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
