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

import lightning as L
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from dcbench.data.transforms import model_input_transform
from dcbench.registry import DATASETS

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


class _Pairs(Dataset):
    """The pairs still to score, as dicts of tensors and strings."""

    def __init__(self, dataset: PairDataset, indices: list[int], size: int | None, channels: int) -> None:
        self.dataset, self.indices = dataset, indices
        self.transform = model_input_transform(size, channels)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = self.indices[i]
        pair = self.dataset.load(index)
        return {"images": torch.stack([self.transform(im) for im in pair.images]), "captions": list(pair.captions),
                "tag": pair.tag, "id": self.dataset.pair_id(index)}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"images": torch.stack([it["images"] for it in items]), "captions": [it["captions"] for it in items],
            "tag": [it["tag"] for it in items], "id": [it["id"] for it in items]}


class MatchingDataModule(L.LightningDataModule):
    """A registered pair dataset prepared for a scorer (same options and resume as the classification one)."""

    def __init__(self, dataset: str | Mapping[str, Any], batch_size: int = 8, num_workers: int = 0,
                 image_size: int | None = None, image_channels: int = 3, limit: int | None = None,
                 skip_ids: Iterable[str] = ()) -> None:
        super().__init__()
        self.dataset_spec, self.batch_size, self.num_workers = dataset, batch_size, num_workers
        self.image_size, self.image_channels, self.limit = image_size, image_channels, limit
        self.skip_ids = set(skip_ids)
        self.dataset: PairDataset | None = None
        self.all_ids: list[str] = []
        self.indices: list[int] = []

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        if self.trainer is not None and self.trainer.world_size > 1:
            self.skip_ids = self.trainer.strategy.broadcast(self.skip_ids, src=0)
        dataset = DATASETS.build(self.dataset_spec)
        if not isinstance(dataset, PairDataset):
            raise TypeError(f"dataset {self.dataset_spec!r} is a {type(dataset).__name__}, not image-text pairs; "
                            "a matching task needs a pair dataset such as shapes-world-pairs or winoground")
        self.dataset = dataset
        n = len(dataset) if self.limit is None else min(self.limit, len(dataset))
        self.all_ids = [dataset.pair_id(i) for i in range(n)]
        self.indices = [i for i, pair_id in enumerate(self.all_ids) if pair_id not in self.skip_ids]

    def predict_dataloader(self) -> DataLoader:
        items = _Pairs(self.dataset, self.indices, self.image_size, self.image_channels)
        return DataLoader(items, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                          collate_fn=_collate)
