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

__all__ = ["ClassificationDataModule", "Remaining", "ScoringDataModule"]


class Remaining(Dataset):
    """The items of ``dataset`` still to score (``indices``), each transformed for the scorer."""

    def __init__(self, dataset: Any, indices: list[int], size: int | None, channels: int) -> None:
        self.dataset, self.indices = dataset, indices
        self.transform = model_input_transform(size, channels)

    def __len__(self) -> int:
        return len(self.indices)


class _Items(Remaining):
    """The images still to score, as ``{"image", "label", "id"}`` dicts."""

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = self.indices[i]
        image, label = self.dataset.load(index)
        return {"image": self.transform(image), "label": label, "id": self.dataset.image_id(index)}


class ScoringDataModule(L.LightningDataModule):
    """What every task's datamodule shares: a registered dataset, stable item ids, ``limit`` and resume.

    Subclasses say how to check the built dataset (``prepare``), what an item's id is (``item_id``) and
    how to load the remaining items (``predict_dataloader``).
    """

    def __init__(self, dataset: str | Mapping[str, Any], batch_size: int = 32, num_workers: int = 0,
                 image_size: int | None = None, image_channels: int = 3, limit: int | None = None,
                 skip_ids: Iterable[str] = ()) -> None:
        super().__init__()
        self.dataset_spec, self.batch_size, self.num_workers = dataset, batch_size, num_workers
        self.image_size, self.image_channels, self.limit = image_size, image_channels, limit
        self.skip_ids = set(skip_ids)
        self.dataset: Any = None
        self.all_ids: list[str] = []  # every item of the run, in dataset order (set in setup)
        self.indices: list[int] = []  # those still to score

    def prepare(self, dataset: Any) -> None:
        """Check the built dataset and derive what the task needs from it (before ids are read)."""

    def item_id(self, index: int) -> str:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        if self.trainer is not None and self.trainer.world_size > 1:
            # Every process must split the same list of remaining items: take rank 0's view.
            self.skip_ids = self.trainer.strategy.broadcast(self.skip_ids, src=0)
        dataset = DATASETS.build(self.dataset_spec)
        self.prepare(dataset)
        self.dataset = dataset
        n = len(dataset) if self.limit is None else min(self.limit, len(dataset))
        self.all_ids = [self.item_id(i) for i in range(n)]
        self.indices = [i for i, item_id in enumerate(self.all_ids) if item_id not in self.skip_ids]


class ClassificationDataModule(ScoringDataModule):
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
        super().__init__(dataset, batch_size, num_workers, image_size, image_channels, limit, skip_ids)
        if prompts is not None and templates is not None:
            raise ValueError("give either data.prompts (a CSV) or data.templates, not both")
        self.prompts, self.templates = prompts, templates
        self.labels: LabelSet | None = None

    def prepare(self, dataset: ImageDataset) -> None:
        self.labels = self._label_set(dataset.classes, dataset.class_members)

    def item_id(self, index: int) -> str:
        return self.dataset.image_id(index)

    def _label_set(self, classes: Sequence[str], members: Sequence[Sequence[str]] | None = None) -> LabelSet:
        if self.prompts is not None:
            return LabelSet.from_csv(self.prompts, classes)
        templates = load_templates(self.templates) if self.templates is not None else ["{}"]
        return LabelSet.from_classes(classes, templates, members)

    def predict_dataloader(self) -> DataLoader:
        items = _Items(self.dataset, self.indices, self.image_size, self.image_channels)
        return DataLoader(items, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)
