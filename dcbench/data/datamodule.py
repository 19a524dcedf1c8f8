"""The LightningDataModule every scorer runs over: a registered dataset, its label set, and resume."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from dcbench.data.base import ImageDataset
from dcbench.data.labels import LabelSet, load_templates
from dcbench.data.transforms import model_input_transform
from dcbench.registry import DATASETS

__all__ = ["ClassificationDataModule"]


class _Items(Dataset):
    """The images still to score, as ``{"image", "label", "id"}`` dicts."""

    def __init__(self, dataset: ImageDataset, indices: list[int], size: int | None, channels: int) -> None:
        self.dataset, self.indices = dataset, indices
        self.transform = model_input_transform(size, channels)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = self.indices[i]
        image, label = self.dataset.load(index)
        return {"image": self.transform(image), "label": label, "id": self.dataset.image_id(index)}


class ClassificationDataModule(L.LightningDataModule):
    """A dataset from the registry, prepared for a scorer.

    Args:
        dataset: registry spec, e.g. ``{"name": "cifar10", "root": "~/data"}``.
        prompts: a prompt CSV in the reference format (``prompt,classname,classidx``), or
        templates: a list of templates (or a text file of them), ``{}`` standing for the class name.
            Neither: one prompt per class, the class name itself.
        image_size, image_channels: what the scorer wants (None: native size).
        limit: score only the first ``limit`` images (quick looks).
        skip_ids: ids already scored (resume).
    """

    def __init__(self, dataset: str | Mapping[str, Any], prompts: str | None = None,
                 templates: str | Sequence[str] | None = None, batch_size: int = 32, num_workers: int = 0,
                 image_size: int | None = None, image_channels: int = 3, limit: int | None = None,
                 skip_ids: Iterable[str] = ()) -> None:
        super().__init__()
        if prompts is not None and templates is not None:
            raise ValueError("give either data.prompts (a CSV) or data.templates, not both")
        self.dataset_spec, self.prompts, self.templates = dataset, prompts, templates
        self.batch_size, self.num_workers = batch_size, num_workers
        self.image_size, self.image_channels, self.limit = image_size, image_channels, limit
        self.skip_ids = set(skip_ids)
        self.dataset: ImageDataset | None = None
        self.labels: LabelSet | None = None
        self.all_ids: list[str] = []  # every image of the run, in dataset order (set in setup)
        self.indices: list[int] = []  # those still to score

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        if self.trainer is not None and self.trainer.world_size > 1:
            # Every process must split the same list of remaining images: take rank 0's view.
            self.skip_ids = self.trainer.strategy.broadcast(self.skip_ids, src=0)
        self.dataset = DATASETS.build(self.dataset_spec)
        self.labels = self._label_set(self.dataset.classes)
        n = len(self.dataset) if self.limit is None else min(self.limit, len(self.dataset))
        self.all_ids = [self.dataset.image_id(i) for i in range(n)]
        self.indices = [i for i, image_id in enumerate(self.all_ids) if image_id not in self.skip_ids]

    def _label_set(self, classes: Sequence[str]) -> LabelSet:
        if self.prompts is not None:
            return LabelSet.from_csv(self.prompts, classes)
        templates = load_templates(self.templates) if self.templates is not None else ["{}"]
        return LabelSet.from_classes(classes, templates)

    def predict_dataloader(self) -> DataLoader:
        items = _Items(self.dataset, self.indices, self.image_size, self.image_channels)
        return DataLoader(items, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)
