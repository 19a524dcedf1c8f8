"""Datasets, label sets and the data module."""

from dcbench.data import digits, folder, torchvision_sets  # noqa: F401  (registers the built-ins)
from dcbench.data.base import BadImageError, DatasetNotFoundError, ImageDataset
from dcbench.data.datamodule import ClassificationDataModule
from dcbench.data.labels import LabelSet, LabelSetError

__all__ = ["BadImageError", "ClassificationDataModule", "DatasetNotFoundError", "ImageDataset", "LabelSet",
           "LabelSetError"]
