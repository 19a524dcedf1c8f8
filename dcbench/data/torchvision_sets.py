"""The paper's datasets that torchvision provides, as dcbench datasets (never downloaded unless asked)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from dcbench.data.base import DatasetNotFoundError, ImageDataset
from dcbench.registry import DATASETS

__all__ = ["TorchvisionDataset"]


class TorchvisionDataset(ImageDataset):
    """Wraps a torchvision classification dataset; ids are ``<name>-<split>-<index>``."""

    def __init__(self, name: str, dataset: Any, split: str) -> None:
        self.name, self.split = name, split
        self.dataset = dataset
        self.classes = _classes(dataset)

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int) -> tuple[Image.Image, int]:
        image, label = self.dataset[index]
        return image, int(label)

    def image_id(self, index: int) -> str:
        return f"{self.name}-{self.split}-{index:06d}"


def _open(name: str, root: str, download: bool, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted. You can use download=True"
        hint = "" if download else " or set `download: true` in the dataset config to let torchvision fetch it"
        raise DatasetNotFoundError(f"{name} not found under {Path(root).expanduser()}: put it there in "
                                   f"torchvision's layout{hint}. ({err})") from err


def _classes(dataset: Any) -> list[str]:
    names = getattr(dataset, "classes", None)
    if names is None:
        raise ValueError(f"{type(dataset).__name__} exposes no class names")
    return [str(c) for c in names]


def _register(key: str, cls_name: str, split_arg: Callable[[str], dict[str, Any]], default_split: str,
              doc: str) -> None:
    def factory(root: str = "~/data", split: str = default_split, download: bool = False) -> TorchvisionDataset:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        kwargs = {"root": str(Path(root).expanduser()), "download": download, **split_arg(split)}
        dataset = _open(key, root, download, lambda: cls(**kwargs))
        return TorchvisionDataset(key, dataset, split)

    factory.__doc__ = doc
    factory.__name__ = key.replace("-", "_")
    DATASETS.register(key)(factory)


def _train_flag(split: str) -> dict[str, Any]:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return {"train": split == "train"}


_register("cifar10", "CIFAR10", _train_flag, "test", "CIFAR-10 (torchvision layout).")
_register("cifar100", "CIFAR100", _train_flag, "test", "CIFAR-100 (torchvision layout).")
_register("mnist", "MNIST", _train_flag, "test", "MNIST (torchvision layout).")
_register("stl10", "STL10", lambda s: {"split": s}, "test", "STL-10 (torchvision layout).")
_register("pets", "OxfordIIITPet", lambda s: {"split": s}, "test", "Oxford-IIIT Pets (split 'trainval'/'test').")
_register("flowers102", "Flowers102", lambda s: {"split": s}, "test", "Oxford Flowers-102 (train/val/test).")
_register("food101", "Food101", lambda s: {"split": s}, "test", "Food-101 (train/test).")
_register("aircraft", "FGVCAircraft", lambda s: {"split": s}, "test", "FGVC-Aircraft, variants (train/val/test).")
