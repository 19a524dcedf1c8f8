"""The embedded models dcbench ships: where they live and what they are (architectures as data).

The digits model is a class-conditional pixel UNet trained by dcbench on the digits train split
(:mod:`dcbench.training`; ``dcbench train-embedded digits --out DIR``). The shipped copy lives in
``dcbench/weights/digits`` in diffusers layout (``unet/`` + ``scheduler/``) plus ``dcbench.json``
(class names, how it was trained, how it scored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "DIGITS_SCHEDULER_CONFIG",
    "DIGITS_UNET_CONFIG",
    "WEIGHTS_DIR",
    "resolve_pretrained",
]

WEIGHTS_DIR = Path(__file__).parent / "weights"
EMBEDDED_PREFIX = "embedded:"

# Architecture as data: ~1.06M parameters, 8x8 -> 4x4 -> 2x2, one ResNet block per level. No
# attention: an attention block at 4x4 made a training step ~1.5x slower on CPU (measured), and the
# model without it already meets the accuracy target.
DIGITS_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 1,
    "out_channels": 1,
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D", "UpBlock2D"],
    "norm_num_groups": 16,
    "num_class_embeds": 10,
}
DIGITS_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "prediction_type": "epsilon",
}


def resolve_pretrained(name_or_path: str) -> str:
    """``embedded:NAME`` -> the shipped directory; anything else (a path or Hub id) unchanged."""
    if not name_or_path.startswith(EMBEDDED_PREFIX):
        return name_or_path
    name = name_or_path[len(EMBEDDED_PREFIX):]
    path = WEIGHTS_DIR / name
    if not (path / "dcbench.json").is_file():
        shipped = sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "dcbench.json").is_file())
        raise FileNotFoundError(f"no embedded model {name!r} (shipped: {', '.join(shipped) or 'none'}). "
                                f"Retrain it with `dcbench train-embedded {name} --out {path}`.")
    return str(path)
