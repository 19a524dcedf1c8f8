"""The learning-rate schedule every dcbench training shares."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["warmup_cosine"]


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> dict[str, Any]:
    """Linear warm-up over ``warmup_steps``, then cosine decay to zero at ``total_steps``.

    Returns Lightning's ``configure_optimizers`` dict (the schedule steps every optimizer step).
    """

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
