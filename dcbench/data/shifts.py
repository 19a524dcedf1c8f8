"""Distribution shifts: corruptions and transformations of a test split, deterministic and label-preserving.

A shift is a registered factory ``(severity) -> Shift``; a :class:`Shift` maps one image (a float tensor
C x H x W in [0, 1]) and a seeded generator to the shifted image. Severities run from 1 (mild) to 5
(strong), as in ImageNet-C; sizes (blur, translation) are fractions of the image side, so the same
severity means the same thing for 8x8 digits and 224x224 photographs.

The ``shifted`` dataset applies one shift at one severity to any registered dataset::

    dataset: {name: shifted, dataset: {name: digits, split: test}, shift: rotate, severity: 3}

Every random choice (the noise, the direction of a rotation or translation) comes from
(``seed``, shift, severity, image id) alone, so a shifted test set is the same on every machine, in any
order and batch size; labels are never touched. Third-party shifts register under the entry-point group
``dcbench.shifts``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from dcbench.data.base import ImageDataset
from dcbench.registry import DATASETS, SHIFTS

__all__ = ["SEVERITIES", "Shift", "ShiftedDataset", "shift_names"]

#: the severity levels every built-in shift takes
SEVERITIES = (1, 2, 3, 4, 5)


class Shift:
    """One shift at one severity: ``shift(image, generator) -> image`` on C x H x W floats in [0, 1]."""

    #: the shift's parameter at severities 1..5
    LEVELS: ClassVar[tuple[float, ...]] = ()
    #: whether it needs colour (3-channel) images
    needs_colour: ClassVar[bool] = False

    def __init__(self, severity: int = 3) -> None:
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(map(str, SEVERITIES))}, got {severity!r}")
        self.severity = severity
        self.level = self.LEVELS[severity - 1]

    def __call__(self, image: Tensor, generator: torch.Generator) -> Tensor:
        if self.needs_colour and image.shape[0] != 3:
            raise ValueError(f"{type(self).__name__} needs colour (RGB) images; this image has {image.shape[0]} "
                             "channel(s). Pick a shift that works on grey images.")
        return self.apply(image, generator).clamp(0, 1)

    def apply(self, image: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError


def _sign(generator: torch.Generator) -> float:
    return 1.0 if torch.rand((), generator=generator) < 0.5 else -1.0


def _background(image: Tensor) -> list[float]:
    """Per-channel median of the border pixels: what moved-in areas are filled with (digits: black).

    The median, not the mean: strokes that touch the edge would otherwise tint the whole frame.
    """
    border = torch.cat([image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1]], dim=1)
    return border.median(dim=1).values.tolist()


def _affine(image: Tensor, angle: float = 0.0, translate: Sequence[float] = (0.0, 0.0), scale: float = 1.0) -> Tensor:
    return TF.affine(image, angle=angle, translate=list(translate), scale=scale, shear=[0.0, 0.0],
                     interpolation=InterpolationMode.BILINEAR, fill=_background(image))


class GaussianNoise(Shift):
    """Additive i.i.d. Gaussian noise; the level is its standard deviation (pixels in [0, 1])."""

    LEVELS = (0.04, 0.08, 0.12, 0.18, 0.26)

    def apply(self, image: Tensor, generator: torch.Generator) -> Tensor:
        return image + self.level * torch.randn(image.shape, generator=generator)


class GaussianBlur(Shift):
    """Gaussian blur; the level is sigma as a fraction of the image side."""

    LEVELS = (0.03, 0.05, 0.07, 0.10, 0.13)

    def apply(self, image: Tensor, generator: torch.Generator) -> Tensor:
        side = min(image.shape[-2:])
        sigma = self.level * side
        kernel = min(2 * math.ceil(3 * sigma) + 1, 2 * side - 1)  # reflect padding needs kernel // 2 < side
        kernel -= 1 - kernel % 2
        return TF.gaussian_blur(image, [kernel, kernel], [sigma, sigma])


class Contrast(Shift):
    """Contrast reduced towards the image's mean grey level; the level is the factor kept."""

    LEVELS = (0.6, 0.45, 0.3, 0.2, 0.12)

    def apply(self, image: Tensor, generator: torch.Generator) -> Tensor:
        mean = image.mean()
        return (image - mean) * self.level + mean


class Rotate(Shift):
    """Rotation about the centre by the level in degrees, clockwise or anticlockwise at random."""

    LEVELS = (8.0, 16.0, 24.0, 32.0, 40.0)

    def apply(self, image: Tensor, generator: torch.Generator) -> Tensor:
        return _affine(image, angle=_sign(generator) * self.level)


class Translate(Shift):
    """Translation by the level times the image side, in a random direction."""

    LEVELS = (0.06, 0.1, 0.14, 0.18, 0.22)

    def apply(self, image: Tensor, generator: torch.Generator) -> Tensor:
        theta = 2 * math.pi * float(torch.rand((), generator=generator))
        distance = self.level * image.shape[-1]
        return _affine(image, translate=(distance * math.cos(theta), distance * math.sin(theta)))


class Scale(Shift):
    """Zoom out (the content shrinks about the centre); the level is the scale factor."""

    LEVELS = (0.9, 0.8, 0.7, 0.6, 0.5)

    def apply(self, image: Tensor, generator: torch.Generator) -> Tensor:
        return _affine(image, scale=self.level)


class ColourShift(Shift):
    """A colour cast: each RGB channel scaled by 1 + level * g, g a random zero-mean unit direction."""

    LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5)
    needs_colour = True

    def apply(self, image: Tensor, generator: torch.Generator) -> Tensor:
        g = torch.randn(3, generator=generator)
        g = g - g.mean()
        g = g / g.norm().clamp_min(1e-8)
        return image * (1 + self.level * g).view(3, 1, 1)


BUILTIN: dict[str, type[Shift]] = {
    "gaussian-noise": GaussianNoise, "gaussian-blur": GaussianBlur, "contrast": Contrast, "rotate": Rotate,
    "translate": Translate, "scale": Scale, "colour-shift": ColourShift,
}


def _register(name: str, cls: type[Shift]) -> None:
    def factory(severity: int = 3) -> Shift:
        return cls(severity)

    factory.__doc__ = cls.__doc__
    factory.__name__ = name.replace("-", "_")
    SHIFTS.register(name)(factory)


for _name, _cls in BUILTIN.items():
    _register(_name, _cls)


def shift_names() -> list[str]:
    """Every registered shift (plugins included)."""
    return SHIFTS.names()


# ---- the dataset -----------------------------------------------------------------------------------------
def _to_tensor(image: Image.Image) -> tuple[Tensor, str]:
    mode = image.mode if image.mode in ("L", "RGB") else ("L" if image.mode in ("1", "I", "I;16", "F") else "RGB")
    return TF.pil_to_tensor(image.convert(mode)).float() / 255, mode


def _to_image(tensor: Tensor, mode: str) -> Image.Image:
    pixels = (tensor * 255).round().clamp(0, 255).to(torch.uint8)
    return TF.to_pil_image(pixels, mode=mode)


class ShiftedDataset(ImageDataset):
    """``dataset`` with ``shift`` applied to every image (labels, classes and order unchanged).

    Ids are ``<original id>@<shift>-<severity>``: stable, and distinct from the clean images' ids.
    """

    def __init__(self, dataset: ImageDataset, shift: Shift, shift_name: str, seed: int = 0) -> None:
        self.dataset, self.shift, self.shift_name, self.seed = dataset, shift, shift_name, seed
        self.classes = list(dataset.classes)
        self.class_members = dataset.class_members

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int) -> tuple[Image.Image, int]:
        from dcbench.scorers.base import image_seed

        image, label = self.dataset.load(index)
        tensor, mode = _to_tensor(image)
        key = f"{self.shift_name}/{self.shift.severity}/{self.dataset.image_id(index)}"
        generator = torch.Generator().manual_seed(image_seed(self.seed, key))
        return _to_image(self.shift(tensor, generator), mode), label

    def image_id(self, index: int) -> str:
        return f"{self.dataset.image_id(index)}@{self.shift_name}-{self.shift.severity}"


@DATASETS.register("shifted")
def shifted(dataset: str | Mapping[str, Any], shift: str, severity: int = 3, seed: int = 0) -> ShiftedDataset:
    """Any registered dataset under a registered distribution shift (``dcbench list`` shows the shifts)."""
    return ShiftedDataset(DATASETS.build(dataset), SHIFTS.build({"name": shift, "severity": severity}), shift, seed)
