"""Image-text matching (Winoground; Thrush et al. 2022): text, image and group scores.

For a pair of images (I0, I1) and captions (C0, C1), with s(I, C) a match score (higher is
better; for the Diffusion Classifier the negated denoising error, Li et al. 2023 Eq. 9):

* text score: each image prefers its own caption, s(I0, C0) > s(I0, C1) and s(I1, C1) > s(I1, C0);
* image score: each caption prefers its own image, s(I0, C0) > s(I1, C0) and s(I1, C1) > s(I0, C1);
* group score: both.

:class:`MatchingTask` is the LightningModule that runs a scorer's ``text_image_scores`` over a
:class:`~dcbench.data.pairs.MatchingDataModule`; records are written like classification records.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import lightning as L
from torch import Tensor

__all__ = ["MatchingTask", "matching_metrics", "supports_matching", "winoground_scores"]


def winoground_scores(scores: Sequence[Sequence[float]]) -> dict[str, bool]:
    """Text, image and group correctness of one pair; ``scores[i][j]`` = s(image i, caption j)."""
    (s00, s01), (s10, s11) = scores
    text = s00 > s01 and s11 > s10
    image = s00 > s10 and s11 > s01
    return {"text": text, "image": image, "group": text and image}


def _rates(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)
    return {"n": n, **{f"{k}_score": sum(r[k] for r in records) / n for k in ("text", "image", "group")}}


def matching_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The summary written to ``metrics.json``: overall scores, scores per tag, cost per pair."""
    if not records:
        raise ValueError("no records: nothing was scored")
    by_tag: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_tag[r["tag"]].append(r)
    overall = _rates(records)
    return {"n_pairs": overall.pop("n"), **overall,
            "by_tag": {tag: _rates(group) for tag, group in sorted(by_tag.items())},
            "nfe_per_pair": sum(r["nfe"] for r in records) / len(records),
            "seconds_per_pair": sum(r["seconds"] for r in records) / len(records)}


def supports_matching(scorer: Any) -> bool:
    """Whether ``scorer`` can score free (image, caption) pairs."""
    return callable(getattr(scorer, "text_image_scores", None))


class MatchingTask(L.LightningModule):
    """Runs ``scorer.text_image_scores`` on every pair: one record per pair.

    The scorer sees both images and both captions of a pair at once, keyed by the pair id, so a
    Monte Carlo scorer can use the same noise for all four (image, caption) combinations.
    """

    def __init__(self, scorer: L.LightningModule) -> None:
        super().__init__()
        if not supports_matching(scorer):
            raise TypeError(f"scorer {type(scorer).__name__} cannot score image-text pairs (it has no "
                            "text_image_scores); image-text matching needs e.g. diffusion-classifier with a "
                            "text-conditional backbone, or clip")
        self.scorer = scorer
        self.image_size, self.image_channels = scorer.image_size, scorer.image_channels

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        records = []
        for images, captions, tag, pair_id in zip(batch["images"], batch["captions"], batch["tag"], batch["id"],
                                                  strict=True):
            start = time.perf_counter()
            scores, nfe = self.scorer.text_image_scores(images, list(captions), key=pair_id)
            matrix = scores.tolist() if isinstance(scores, Tensor) else scores
            records.append({"id": pair_id, "tag": tag, "captions": list(captions), "scores": matrix,
                            **winoground_scores(matrix), "nfe": int(nfe), "seconds": time.perf_counter() - start})
        return records
