"""Image preprocessing shared by all scorers: the reference's Resize -> CenterCrop -> mode -> [-1, 1]."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image
from torch import Tensor
from torchvision import transforms as T

__all__ = ["clip_normalize", "model_input_transform"]


class _ConvertMode:
    """A picklable ``image.convert(mode)`` (data loader workers may be spawned)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.convert(self.mode)


def model_input_transform(size: int | None, channels: int) -> Callable[[Image.Image], Tensor]:
    """The reference implementation's transform, in its order.

    Resize the short side to ``size`` (bicubic), centre-crop to size x size, convert to grey
    (``channels=1``) or RGB (``channels=3``), scale to [-1, 1]. ``size=None`` keeps the native size.
    """
    mode = "L" if channels == 1 else "RGB"
    steps: list[Callable] = []
    if size is not None:
        steps += [T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size)]
    steps += [_ConvertMode(mode), T.ToTensor(), T.Normalize([0.5] * channels, [0.5] * channels)]
    return T.Compose(steps)


def clip_normalize(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Images in [-1, 1] -> the per-channel standardised pixels a CLIP vision tower was trained on."""
    return ((images + 1) / 2 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
