"""Datasets and label sets (the LightningDataModule is in :mod:`dcbench.data.datamodule`)."""

from dcbench.data import digits, folder, shifts, torchvision_sets, winoground, world  # noqa: F401  (registers the built-ins)
from dcbench.data.base import BadImageError, DatasetNotFoundError, ImageDataset
from dcbench.data.labels import LabelSet, LabelSetError

__all__ = ["BadImageError", "DatasetNotFoundError", "ImageDataset", "LabelSet", "LabelSetError"]
