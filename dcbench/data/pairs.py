"""Image-text matching data: pairs of two images and two captions (Winoground's format).

Item i holds images (I0, I1) and captions (C0, C1) where I0 matches C0 and I1 matches C1, plus a
tag (the kind of swap that turns C0 into C1, e.g. "object", "relation"). Every scorer that can
score free (image, caption) pairs is evaluated on them by :mod:`dcbench.matching`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from dcbench.data.datamodule import Remaining, ScoringDataModule

__all__ = ["ImagePair", "MatchingDataModule", "PairDataset"]


@dataclass(frozen=True)
class ImagePair:
    """Two images and two captions; image i matches caption i."""

    images: tuple[Image.Image, Image.Image]
    captions: tuple[str, str]
    tag: str


class PairDataset(Dataset, ABC):
    """Indexed image-text pairs with stable ids (noise and resume are keyed by them)."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> ImagePair:
        """The pair at ``index``."""

    @abstractmethod
    def pair_id(self, index: int) -> str:
        """A stable, unique id for the pair at ``index``."""

    def __getitem__(self, index: int) -> ImagePair:
        return self.load(index)


class _Pairs(Remaining):
    """The pairs still to score, as dicts of tensors and strings."""

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = self.indices[i]
        pair = self.dataset.load(index)
        return {"images": torch.stack([self.transform(im) for im in pair.images]), "captions": list(pair.captions),
                "tag": pair.tag, "id": self.dataset.pair_id(index)}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"images": torch.stack([it["images"] for it in items]), "captions": [it["captions"] for it in items],
            "tag": [it["tag"] for it in items], "id": [it["id"] for it in items]}


class MatchingDataModule(ScoringDataModule):
    """A registered pair dataset prepared for a scorer (same options and resume as the classification one)."""

    def __init__(self, dataset: str | Mapping[str, Any], batch_size: int = 8, num_workers: int = 0,
                 image_size: int | None = None, image_channels: int = 3, limit: int | None = None,
                 skip_ids: Iterable[str] = ()) -> None:
        super().__init__(dataset, batch_size, num_workers, image_size, image_channels, limit, skip_ids)

    def prepare(self, dataset: Any) -> None:
        if not isinstance(dataset, PairDataset):
            raise TypeError(f"dataset {self.dataset_spec!r} is a {type(dataset).__name__}, not image-text pairs; "
                            "a matching task needs a pair dataset such as shapes-world-pairs or winoground")

    def item_id(self, index: int) -> str:
        return self.dataset.pair_id(index)

    def predict_dataloader(self) -> DataLoader:
        items = _Pairs(self.dataset, self.indices, self.image_size, self.image_channels)
        return DataLoader(items, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                          collate_fn=_collate)
