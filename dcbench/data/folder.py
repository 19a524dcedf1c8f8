"""Datasets stored as folders: any ``ROOT/<class>/<image>`` tree; ImageNet, ImageNet-A, ImageNet-V2, ObjectNet."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from dcbench.data.base import BadImageError, DatasetNotFoundError, ImageDataset
from dcbench.registry import DATASETS

__all__ = ["ImageFolder", "imagenet_class_names"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


class ImageFolder(ImageDataset):
    """Images under ``root/<class name>/...``; classes sorted by folder name; ids are relative paths.

    ``folders``: use only these sub-folders, in this order (default: all, sorted).
    """

    def __init__(self, root: str | Path, classes: list[str] | None = None, folders: list[str] | None = None) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"image folder {self.root} does not exist: put one sub-folder of images "
                                       f"per class there (ROOT/<class>/<image>.jpg), or point `root` at it")
        present = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not present:
            raise DatasetNotFoundError(f"{self.root} has no class sub-folders (expected ROOT/<class>/<image>)")
        absent = [f for f in folders or () if f not in present]
        if absent:
            raise DatasetNotFoundError(f"{self.root} lacks the class folder(s) {absent[:5]}")
        folders = list(folders) if folders is not None else present
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
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(f"ImageNet-V2 not found at {path}: unpack e.g. "
                                   "imagenetv2-matched-frequency.tar.gz there (ROOT/<class index>/<image>.jpeg)")
    folders = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not folders or not all(f.isdigit() and int(f) < 1000 for f in folders):
        raise DatasetNotFoundError(f"{path} must hold one folder per ImageNet class index (0 to 999), "
                                   f"found e.g. {folders[:3]}")
    names = imagenet_class_names()
    return ImageFolder(path, [names[int(f)] for f in folders])


@DATASETS.register("objectnet")
def objectnet(root: str, border: int = 2) -> ImageFolder:
    """ObjectNet 1.0 (Barbu et al.) as released, restricted to the 113 classes that overlap ImageNet-1k.

    ``root`` is the unpacked ``objectnet-1.0`` folder: ``images/<folder>/*.png`` and ``mappings/`` (shipped
    with the dataset). Each ObjectNet class covers one or more ImageNet classes (``objectnet_to_imagenet_1k.json``;
    e.g. "Alarm clock": analog and digital clock), so its label set has one prompt per ImageNet class: a
    classifier over ImageNet classes restricted to the mapped ones, whose pick counts for the ObjectNet class
    it belongs to (the evaluation of Li et al. 2023 and earlier work). ``border``: pixels cropped from each
    side (ObjectNet images carry a 1-2 px red frame that the usual protocol removes).
    """
    import json

    base = Path(root).expanduser()
    maps = base / "mappings"
    needed = ["folder_to_objectnet_label.json", "objectnet_to_imagenet_1k.json", "imagenet_to_label_2012_v2",
              "pytorch_to_imagenet_2012_id.json"]
    lacking = [name for name in needed if not (maps / name).is_file()]
    if lacking:
        raise DatasetNotFoundError(f"ObjectNet not found at {base}: expected the unpacked objectnet-1.0 folder with "
                                   f"images/ and mappings/ ({', '.join(lacking)} missing)")
    folder_of = {label: folder for folder, label in json.loads((maps / "folder_to_objectnet_label.json")
                                                               .read_text(encoding="utf-8")).items()}
    to_imagenet = json.loads((maps / "objectnet_to_imagenet_1k.json").read_text(encoding="utf-8"))
    # imagenet_to_label_2012_v2 lists ImageNet labels in the 2012 id order; pytorch_to_imagenet_2012_id maps
    # the usual (torchvision/timm) class index to that order.
    line_labels = [line.strip() for line in (maps / "imagenet_to_label_2012_v2").read_text(encoding="utf-8")
                   .splitlines() if line.strip()]
    index_of_line = {int(line): int(index) for index, line in json.loads((maps / "pytorch_to_imagenet_2012_id.json")
                                                                         .read_text(encoding="utf-8")).items()}
    index_of_label = {label: index_of_line[line] for line, label in enumerate(line_labels)}
    names = imagenet_class_names()
    classes = sorted(to_imagenet)
    unknown = [label for label in classes if label not in folder_of]
    if unknown:
        raise DatasetNotFoundError(f"{maps}: classes {unknown[:3]} of objectnet_to_imagenet_1k.json have no folder "
                                   "in folder_to_objectnet_label.json; the mapping files do not belong together")
    strange = sorted({label for c in classes for label in to_imagenet[c].split("; ") if label not in index_of_label})
    if strange:
        raise DatasetNotFoundError(f"{maps}: ImageNet labels {strange[:3]} of objectnet_to_imagenet_1k.json are not "
                                   "in imagenet_to_label_2012_v2; the mapping files do not belong together")
    members = [[names[index_of_label[label]] for label in to_imagenet[c].split("; ")] for c in classes]
    return _ObjectNet(base / "images", classes, [folder_of[label] for label in classes], members, border)


class _ObjectNet(ImageFolder):
    """An image folder whose classes cover several ImageNet classes and whose images lose a border."""

    def __init__(self, root: Path, classes: list[str], folders: list[str], members: list[list[str]],
                 border: int) -> None:
        super().__init__(root, classes, folders)
        self.class_members = members
        self.border = border

    def load(self, index: int) -> tuple[Image.Image, int]:
        image, label = super().load(index)
        if self.border:
            width, height = image.size
            image = image.crop((self.border, self.border, width - self.border, height - self.border))
        return image, label


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names in class-index order, as timm ships them (no download)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(1000)]
