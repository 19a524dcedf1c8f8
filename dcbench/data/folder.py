"""Datasets stored as folders: any ``ROOT/<class>/<image>`` tree, and ImageNet, ImageNet-A and ImageNet-V2."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from dcbench.data.base import BadImageError, DatasetNotFoundError, ImageDataset
from dcbench.registry import DATASETS

__all__ = ["ImageFolder"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


class ImageFolder(ImageDataset):
    """Images under ``root/<class name>/...``; classes sorted by folder name; ids are relative paths."""

    def __init__(self, root: str | Path, classes: list[str] | None = None) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"image folder {self.root} does not exist: put one sub-folder of images "
                                       f"per class there (ROOT/<class>/<image>.jpg), or point `root` at it")
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not folders:
            raise DatasetNotFoundError(f"{self.root} has no class sub-folders (expected ROOT/<class>/<image>)")
        self.folders = folders
        self.classes = list(classes) if classes is not None else folders
        if len(self.classes) != len(folders):
            raise ValueError(f"{len(self.classes)} class names given for {len(folders)} folders in {self.root}")
        self.items = [(path, label) for label, name in enumerate(folders)
                      for path in sorted((self.root / name).rglob("*"))
                      if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()]
        if not self.items:
            raise DatasetNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {self.root}")

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> tuple[Image.Image, int]:
        path, label = self.items[index]
        try:
            with Image.open(path) as image:
                image.load()
                return image.copy(), label
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise BadImageError(f"cannot read image {path}: {err}. Remove or replace that file and run the same "
                                "command again; images already scored are kept in the run directory.") from err

    def image_id(self, index: int) -> str:
        return self.items[index][0].relative_to(self.root).as_posix()


@DATASETS.register("imagefolder")
def imagefolder(root: str, classes: list[str] | None = None) -> ImageFolder:
    """Any folder of images, one sub-folder per class (class names = folder names unless given)."""
    return ImageFolder(root, classes)


def _synset_folders(path: Path, what: str) -> ImageFolder:
    """``path/<wnid>/*`` with ImageNet-1k synset folders (all 1,000, or a subset); class names from timm."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    if not path.is_dir():
        raise DatasetNotFoundError(f"{what} not found at {path}: arrange it as {path}/<wnid>/<image> (one folder "
                                   "per synset, e.g. n01440764)")
    folders = sorted(p.name for p in path.iterdir() if p.is_dir())
    unknown = sorted(set(folders) - set(info.label_names()))
    if unknown:
        raise DatasetNotFoundError(f"{path} has folders that are not ImageNet-1k synsets, e.g. {unknown[:3]}")
    return ImageFolder(path, [info.label_name_to_description(f) for f in folders])


@DATASETS.register("imagenet")
def imagenet(root: str, split: str = "val") -> ImageFolder:
    """ImageNet-1k as ``ROOT/<split>/<wnid>/*.JPEG`` (1,000 synset folders); class names from timm."""
    return _synset_folders(Path(root).expanduser() / split, f"ImageNet {split} split")


@DATASETS.register("imagenet-a")
def imagenet_a(root: str) -> ImageFolder:
    """ImageNet-A (Hendrycks et al.) as released: ``ROOT/<wnid>/*.jpg``, 200 of the 1,000 ImageNet classes.

    Its classes are those 200 synsets' names, so a classifier over ImageNet's classes compares only them
    (the paper's 200-class evaluation).
    """
    return _synset_folders(Path(root).expanduser(), "ImageNet-A")


@DATASETS.register("imagenet-v2")
def imagenet_v2(root: str) -> ImageFolder:
    """ImageNet-V2 (Recht et al.) as released: ``ROOT/<class index 0..999>/*.jpeg``; class names from timm."""
    from timm.data import ImageNetInfo

    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(f"ImageNet-V2 not found at {path}: unpack e.g. "
                                   "imagenetv2-matched-frequency.tar.gz there (ROOT/<class index>/<image>.jpeg)")
    folders = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not folders or not all(f.isdigit() and int(f) < 1000 for f in folders):
        raise DatasetNotFoundError(f"{path} must hold one folder per ImageNet class index (0 to 999), "
                                   f"found e.g. {folders[:3]}")
    info = ImageNetInfo()
    return ImageFolder(path, [info.index_to_description(int(f)) for f in folders])
