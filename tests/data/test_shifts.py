"""Distribution shifts: deterministic, label-preserving, and clear about what they cannot do."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from dcbench.config import ConfigError
from dcbench.data.base import ImageDataset
from dcbench.data.shifts import SEVERITIES, ShiftedDataset
from dcbench.registry import DATASETS, SHIFTS, RegistryError

GREY_SHIFTS = ["gaussian-noise", "gaussian-blur", "contrast", "rotate", "translate", "scale"]


class Blobs(ImageDataset):
    """Six 12x12 images: a bright square on black, at a few places; label = index % 3."""

    classes: ClassVar[list[str]] = ["a", "b", "c"]

    def __init__(self, mode: str = "L") -> None:
        self.mode = mode

    def __len__(self) -> int:
        return 6

    def load(self, index: int) -> tuple[Image.Image, int]:
        pixels = torch.zeros(12, 12, 3 if self.mode == "RGB" else 1, dtype=torch.uint8)
        pixels[3 + index % 3 : 8 + index % 3, 4:8] = torch.tensor([200, 120, 40][: pixels.shape[-1]],
                                                                  dtype=torch.uint8)
        array = pixels.numpy() if self.mode == "RGB" else pixels[..., 0].numpy()
        return Image.fromarray(array, mode=self.mode), index % 3

    def image_id(self, index: int) -> str:
        return f"blob-{index}"


def shifted(name: str, severity: int = 3, seed: int = 0, mode: str = "L") -> ShiftedDataset:
    return ShiftedDataset(Blobs(mode), SHIFTS.build({"name": name, "severity": severity}), name, seed)


def pixels(dataset: ImageDataset, index: int) -> torch.Tensor:
    return TF.pil_to_tensor(dataset.load(index)[0]).float()


@pytest.mark.parametrize("name", GREY_SHIFTS)
def test_shifts_are_deterministic_and_independent_of_order(name):
    first = [pixels(shifted(name), i) for i in range(6)]
    again = shifted(name)
    backwards = {i: pixels(again, i) for i in reversed(range(6))}
    assert all(torch.equal(first[i], backwards[i]) for i in range(6))


@pytest.mark.parametrize("name", GREY_SHIFTS)
def test_shifts_keep_labels_classes_and_size_and_change_the_image(name):
    clean, data = Blobs(), shifted(name, severity=5)
    assert data.classes == clean.classes and len(data) == len(clean)
    for i in range(len(clean)):
        image, label = data.load(i)
        original, original_label = clean.load(i)
        assert label == original_label and image.size == original.size and image.mode == original.mode
        assert not torch.equal(pixels(data, i), pixels(clean, i))
    ids = [data.image_id(i) for i in range(len(data))]
    assert ids == [f"blob-{i}@{name}-5" for i in range(6)] and len(set(ids)) == len(ids)


def test_severity_grows_the_change():
    clean = torch.stack([pixels(Blobs(), i) for i in range(6)])
    for name in GREY_SHIFTS:
        change = [(torch.stack([pixels(shifted(name, s), i) for i in range(6)]) - clean).abs().mean()
                  for s in SEVERITIES]
        assert change[0] < change[-1], name


def test_random_shifts_follow_the_seed():
    assert not torch.equal(pixels(shifted("gaussian-noise", seed=0), 0), pixels(shifted("gaussian-noise", seed=1), 0))
    assert torch.equal(pixels(shifted("contrast", seed=0), 0), pixels(shifted("contrast", seed=1), 0))


def test_geometric_shifts_keep_the_object_in_the_picture():
    """A label-preserving move: most of the bright object's mass is still there after the strongest shift."""
    for name in ("rotate", "translate"):
        for i in range(6):
            before, after = pixels(Blobs(), i).sum(), pixels(shifted(name, 5), i).sum()
            assert after == pytest.approx(before, rel=0.25), name


def test_colour_shift_needs_colour():
    rgb = shifted("colour-shift", mode="RGB")
    assert rgb.load(0)[0].mode == "RGB"
    assert not torch.equal(pixels(rgb, 0), pixels(Blobs("RGB"), 0))
    with pytest.raises(ValueError, match="needs colour"):
        shifted("colour-shift").load(0)


def test_the_registry_builds_shifted_datasets_and_rejects_bad_input():
    data = DATASETS.build({"name": "shifted", "dataset": {"name": "digits", "split": "test"},
                           "shift": "rotate", "severity": 2})
    assert len(data) == 360 and data.image_id(0).endswith("@rotate-2")
    with pytest.raises(ConfigError, match="severity must be one of"):
        SHIFTS.build({"name": "rotate", "severity": 7})
    with pytest.raises(RegistryError, match=r"unknown distribution shift .fog.\. Registered .*gaussian-noise"):
        SHIFTS.build("fog")
