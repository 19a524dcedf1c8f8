"""Synthetic SD Data (Li et al. 2023, Table 1): a classifier trained only on images the diffusion model generated.

``dcbench fit-baseline`` samples images per class from the class prompts of the label set (DDIM with
classifier-free guidance) and trains a small timm classifier from scratch on them alone; real
images are seen only at test time, so the baseline stays zero-shot. Scoring calls no denoiser (nfe 0);
the cost of generating the training set is in the fit's record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from dcbench.baselines.store import load_baseline
from dcbench.registry import SCORERS
from dcbench.scorers.fitted import FittedScorer

__all__ = ["SyntheticDataScorer", "image_classifier"]

KIND = "synthetic-data"


def image_classifier(model: Mapping[str, Any], num_classes: int) -> nn.Module:
    """A timm model from ``{name: ..., **options}`` with ``num_classes`` outputs, randomly initialised."""
    import timm

    options = dict(model)
    name = options.pop("name", None)
    if not name:
        raise ValueError(f"the classifier is given as {{name: <timm model>, ...options}}, got {dict(model)}")
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **options)
    except (RuntimeError, TypeError) as err:  # timm: "Unknown model", or an option the model does not take
        raise ValueError(f"cannot build timm model {name!r} with options {options}: {err}") from err


class SyntheticDataScorer(FittedScorer):
    """The Synthetic SD Data baseline: a fitted image classifier on images in [-1, 1] (no denoiser calls)."""

    nfe = 0

    def __init__(self, model: nn.Module, classes: Sequence[str], image_size: int, image_channels: int = 3,
                 batch_size: int = 256) -> None:
        super().__init__(classes, batch_size)
        self.model = model
        self.image_size, self.image_channels = image_size, image_channels

    def logits(self, images: Tensor, ids: list[str]) -> Tensor:
        return self.model(images)


@SCORERS.register(KIND)
def synthetic_data(checkpoint: str | None = None, batch_size: int = 256,
                   fit: Mapping[str, Any] | None = None) -> SyntheticDataScorer:
    """Synthetic SD Data baseline: a timm classifier trained only on generated images (`dcbench fit-baseline`).

    ``checkpoint`` is the directory ``dcbench fit-baseline`` wrote (or ``embedded:NAME/PART``). ``fit`` holds
    the options of ``dcbench fit-baseline`` (the generating backbone among them); scoring ignores it.
    """
    if checkpoint is None:
        raise ValueError("give scorer.checkpoint: the directory `dcbench fit-baseline` wrote")
    fitted = load_baseline(checkpoint, KIND)
    record = fitted.record
    model = fitted.load_into(image_classifier(record["model"], len(record["classes"])))
    return SyntheticDataScorer(model, record["classes"], record["image_size"], record.get("image_channels", 3),
                               batch_size)
