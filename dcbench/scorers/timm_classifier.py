"""Discriminative baselines: timm image classifiers fitted by ``dcbench fit-baseline`` (Li et al. 2023, Table 4).

``dcbench fit-baseline`` trains a timm model from scratch on a labelled train split (the ``timm`` fit:
the same data the class-conditional diffusion model was trained on) and writes its directory; the
``timm`` scorer loads it. The synthetic-data baseline is the same kind of classifier trained on generated
images instead, and shares this code. Scoring calls no denoiser (nfe 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from torch import Tensor, nn

from dcbench.baselines.store import load_baseline
from dcbench.registry import SCORERS
from dcbench.scorers.fitted import FittedScorer

__all__ = ["TimmClassifier", "image_classifier", "load_timm_classifier"]

KIND = "timm"
S = TypeVar("S", bound="TimmClassifier")


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


class TimmClassifier(FittedScorer):
    """A fitted timm classifier on images in [-1, 1], resized to ``image_size`` by the datamodule."""

    nfe = 0

    def __init__(self, model: nn.Module, classes: Sequence[str], image_size: int, image_channels: int = 3,
                 batch_size: int = 256) -> None:
        super().__init__(classes, batch_size)
        self.model = model
        self.image_size, self.image_channels = image_size, image_channels

    def logits(self, images: Tensor, ids: list[str]) -> Tensor:
        return self.model(images)


def load_timm_classifier(checkpoint: str | None, kind: str, batch_size: int, cls: type[S]) -> S:
    """The fitted classifier of type ``kind`` in ``checkpoint`` (a fit-baseline directory) as a ``cls`` scorer."""
    if checkpoint is None:
        raise ValueError("give scorer.checkpoint: the directory `dcbench fit-baseline` wrote")
    fitted = load_baseline(checkpoint, kind)
    record = fitted.record
    model = fitted.load_into(image_classifier(record["model"], len(record["classes"])))
    return cls(model, record["classes"], record["image_size"], record.get("image_channels", 3), batch_size)


@SCORERS.register(KIND)
def timm_classifier(checkpoint: str | None = None, batch_size: int = 256,
                    fit: Mapping[str, Any] | None = None) -> TimmClassifier:
    """A timm classifier trained on a labelled train split (`dcbench fit-baseline`): the discriminative baseline.

    ``checkpoint`` is the directory ``dcbench fit-baseline`` wrote (or ``embedded:NAME/PART``). ``fit`` holds
    the options of ``dcbench fit-baseline`` (train split, model, training); scoring ignores it.
    """
    return load_timm_classifier(checkpoint, KIND, batch_size, TimmClassifier)
