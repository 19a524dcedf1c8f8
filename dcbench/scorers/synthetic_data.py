"""Synthetic SD Data (Li et al. 2023, Table 1): a classifier trained only on images the diffusion model generated.

``dcbench fit-baseline`` samples images per class from the class prompts of the label set (DDIM with
classifier-free guidance) and trains a small timm classifier from scratch on them alone; real
images are seen only at test time, so the baseline stays zero-shot. Scoring calls no denoiser (nfe 0);
the cost of generating the training set is in the fit's record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dcbench.registry import SCORERS
from dcbench.scorers.timm_classifier import TimmClassifier, image_classifier, load_timm_classifier

__all__ = ["SyntheticDataScorer", "image_classifier"]

KIND = "synthetic-data"


class SyntheticDataScorer(TimmClassifier):
    """The Synthetic SD Data baseline: a timm classifier fitted on generated images (no denoiser calls)."""


@SCORERS.register(KIND)
def synthetic_data(checkpoint: str | None = None, batch_size: int = 256,
                   fit: Mapping[str, Any] | None = None) -> SyntheticDataScorer:
    """Synthetic SD Data baseline: a timm classifier trained only on generated images (`dcbench fit-baseline`).

    ``checkpoint`` is the directory ``dcbench fit-baseline`` wrote (or ``embedded:NAME/PART``). ``fit`` holds
    the options of ``dcbench fit-baseline`` (the generating backbone among them); scoring ignores it.
    """
    return load_timm_classifier(checkpoint, KIND, batch_size, SyntheticDataScorer)
