"""The embedded dataset: scikit-learn's bundled 8x8 handwritten digits (no download, ever).

Split: ``sklearn.model_selection.train_test_split(test_size=0.2, stratify=labels, random_state=0)``
over all 1,797 images, giving 1,437 train and 360 test images with the class balance of the whole.
Pixels (0..16 in scikit-learn) are stored as 8-bit grey levels round(v * 255 / 16).
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

import numpy as np
from PIL import Image

from dcbench.data.base import ImageDataset
from dcbench.registry import DATASETS

__all__ = ["DigitsDataset", "digits_split"]

SPLIT_SEED = 0
TEST_FRACTION = 0.2


@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return pixels, bunch.target.astype(np.int64)


def digits_split(split: str) -> np.ndarray:
    """Indices (into scikit-learn's array) of the fixed stratified ``train`` or ``test`` split."""
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise ValueError(f"digits has splits 'train' and 'test', not {split!r}")
    _, labels = _load()
    train, test = train_test_split(np.arange(len(labels)), test_size=TEST_FRACTION, stratify=labels,
                                   random_state=SPLIT_SEED)
    return np.sort(train if split == "train" else test)


class DigitsDataset(ImageDataset):
    """8x8 grey digits 0-9; ids are ``digits-NNNN`` (the index in scikit-learn's array)."""

    classes: ClassVar[list[str]] = [str(d) for d in range(10)]

    def __init__(self, split: str = "test") -> None:
        self.split = split
        self.indices = digits_split(split)

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> tuple[Image.Image, int]:
        pixels, labels = _load()
        i = int(self.indices[index])
        return Image.fromarray(pixels[i], mode="L"), int(labels[i])

    def image_id(self, index: int) -> str:
        return f"digits-{int(self.indices[index]):04d}"


@DATASETS.register("digits")
def digits(split: str = "test") -> DigitsDataset:
    """scikit-learn's 8x8 digits with dcbench's fixed stratified split (1,437 train / 360 test)."""
    return DigitsDataset(split)
