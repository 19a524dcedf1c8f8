"""A fitted baseline on disk: ``DIR/model.safetensors`` (the classifier's weights) and ``DIR/baseline.json``.

``baseline.json`` holds everything needed to rebuild the classifier (``kind``, classes, the backbone
spec and the model/feature settings) and how it was fitted (the ``training`` record). The weights file
is written first and the record last, so a directory with a record is a complete fit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from dcbench.backbones.base import ModelNotFoundError
from dcbench.embedded import resolve_pretrained

__all__ = ["RECORD_FILE", "WEIGHTS_FILE", "BaselineNotFoundError", "FittedBaseline", "load_baseline",
           "save_baseline"]

WEIGHTS_FILE = "model.safetensors"
RECORD_FILE = "baseline.json"


class BaselineNotFoundError(ModelNotFoundError):
    """A fitted baseline that is missing or cannot be read; the message says how to fit one."""


def _fix(kind: str, path: str | Path) -> str:
    config = f"configs/embedded/baselines/{kind.replace('-', '_')}.yaml"
    return (f"Fit one with `dcbench fit-baseline --config CFG --run-dir {path}` (e.g. CFG = {config}) and "
            f"give that directory as scorer.checkpoint.")


@dataclass(frozen=True)
class FittedBaseline:
    """A fitted baseline read from disk: its directory, its record and its weights."""

    path: Path
    record: dict[str, Any]
    state: dict[str, Tensor]

    def load_into(self, model: nn.Module) -> nn.Module:
        """Load the weights into ``model`` (rebuilt from the record) strictly; a clear error on mismatch."""
        try:
            model.load_state_dict(self.state, strict=True)
        except RuntimeError as err:
            raise BaselineNotFoundError(f"the weights in {self.path / WEIGHTS_FILE} do not fit the classifier "
                                        f"described by {self.path / RECORD_FILE}: {err}. "
                                        f"{_fix(self.record['kind'], self.path)}") from err
        return model.eval().requires_grad_(False)


def save_baseline(directory: str | Path, model: nn.Module, record: dict[str, Any]) -> None:
    """Write the classifier's weights, then its record (each through a temporary file, then renamed)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()},
              weights.with_suffix(".tmp"))
    weights.with_suffix(".tmp").replace(weights)
    tmp = directory / (RECORD_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(directory / RECORD_FILE)


def load_baseline(spec: str, kind: str) -> FittedBaseline:
    """The fitted baseline of type ``kind`` in directory ``spec`` (or ``embedded:NAME/PART``), read safely."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        path = Path(resolve_pretrained(spec)).expanduser()
    except FileNotFoundError as err:
        raise BaselineNotFoundError(f"no fitted {kind} baseline {spec!r}: {err}") from err
    if not (path / RECORD_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        what = "does not exist" if not path.exists() else f"holds no {RECORD_FILE} and {WEIGHTS_FILE}"
        hint = (" (it holds an unfinished fit: rerun the same fit-baseline command to resume it)"
                if (path / "checkpoints").is_dir() else "")
        raise BaselineNotFoundError(f"the fitted {kind} baseline {path} {what}{hint}. {_fix(kind, path)}")
    try:
        record = json.loads((path / RECORD_FILE).read_text(encoding="utf-8"))
        state = load_file(path / WEIGHTS_FILE)
    except (OSError, ValueError, SafetensorError) as err:
        raise BaselineNotFoundError(f"cannot read the fitted {kind} baseline in {path}: {err}. "
                                    f"{_fix(kind, path)}") from err
    if not isinstance(record, dict) or record.get("kind") != kind:
        found = record.get("kind") if isinstance(record, dict) else None
        raise BaselineNotFoundError(f"{path} holds a {found or 'unknown'} baseline, not a {kind} one. "
                                    f"{_fix(kind, path)}")
    return FittedBaseline(path, record, state)
