"""Reading tensors from files safely: safetensors, or ``torch.load(weights_only=True)``, never pickle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["load_tensors"]


def load_tensors(path: str | Path) -> Any:
    """A ``.safetensors`` file as a dict of tensors; anything else through ``torch.load(weights_only=True)``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)
