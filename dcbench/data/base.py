"""What every dcbench dataset is: indexed images with labels, class names and stable ids."""

from __future__ import annotations

from abc import ABC, abstractmethod

from PIL import Image
from torch.utils.data import Dataset

__all__ = ["BadImageError", "DatasetNotFoundError", "ImageDataset"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not where dcbench was told to look; the message says where to put it."""


class BadImageError(ValueError):
    """An image file that cannot be decoded; the message names the file."""


class ImageDataset(Dataset, ABC):
    """A labelled image dataset.

    Subclasses set ``classes`` (class names, index = label) and implement ``__len__``,
    ``load(index) -> (PIL image, label)`` and ``image_id(index)``. Ids must be stable across runs
    and machines: dcbench derives each image's noise from (seed, id) and resumes runs by id.
    """

    classes: list[str]
    #: For datasets whose classes each cover several of a model's classes (ObjectNet's cover ImageNet's):
    #: the names each class goes by. The label set gets one prompt per name, so a classifier that picks the
    #: best prompt scores the class by its best member (the usual ObjectNet protocol).
    class_members: list[list[str]] | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> tuple[Image.Image, int]:
        """The image (any PIL mode) and its label."""

    @abstractmethod
    def image_id(self, index: int) -> str:
        """A stable, unique id for the image at ``index``."""

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return self.load(index)
