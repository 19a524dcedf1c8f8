"""The shapes world: a procedurally generated, captioned image world for offline zero-shot studies.

Every image is drawn from a seed and its index alone (the same on any machine). Objects are coloured
shapes; scenes hold one object at a position (left / middle / right) or two objects in a relation
("left of", "right of", "above", "below", "and").

What makes the test split zero-shot:

* held-out combinations: the colour-shape pairs in ``HELD_OUT`` never appear in the train split, in
  images or captions; their classification classes are reported separately;
* reserved families: a two-object *family* is a pair of colours with a pair of shapes; every
  Winoground-style swap keeps the family, and the families in ``reserved_families()`` never appear
  in train, so no test caption is a train caption;
* prompt wording: classification prompts ("a photo of a red circle on the left.") use a template that
  train captions never use.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from dcbench.data.base import ImageDataset
from dcbench.data.pairs import ImagePair, PairDataset
from dcbench.registry import DATASETS

__all__ = ["COLOURS", "HELD_OUT", "POSITIONS", "SHAPES", "CaptionedShapes", "Obj", "Pair", "ShapesClassification",
           "ShapesPairs", "caption_pairs", "render", "reserved_families"]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 230), "yellow": (235, 215, 40),
    "purple": (150, 60, 190),
}
SHAPES = ("circle", "square", "triangle", "cross")
POSITIONS = {"left": "on the left", "middle": "in the middle", "right": "on the right"}
SIZES = {"small": 4, "large": 6}  # half-widths in pixels at 32x32
# One per colour and per shape, so every colour and every shape is still seen in training.
HELD_OUT = frozenset({("red", "triangle"), ("green", "cross"), ("blue", "circle"), ("yellow", "square")})
RELATIONS = ("left of", "right of", "above", "below", "and")
IMAGE_SIZE = 32
_SPLIT_CODE = {"train": 0, "test": 1, "pairs": 2}

TRAIN_SINGLE_TEMPLATES = ("a {size} {colour} {shape} {where}", "a {colour} {shape} {where}",
                          "{size} {colour} {shape}, {where}")
CLASS_PROMPT_TEMPLATE = "a photo of a {}."  # never a train caption: no train caption says "photo"


@dataclass(frozen=True)
class Obj:
    colour: str
    shape: str
    size: str = "large"

    @property
    def phrase(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Pair:
    """Two images and two captions made of the same words; image i matches caption i."""

    captions: tuple[str, str]
    images: tuple[Image.Image, Image.Image]
    swap: str  # "attribute", "relation" or "object"


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_CODE[split], index])


def _draw(draw: ImageDraw.ImageDraw, obj: Obj, cx: float, cy: float) -> None:
    r, fill = SIZES[obj.size], COLOURS[obj.colour]
    if obj.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif obj.shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:  # cross
        w = max(1, r // 2)
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)


def render(placed: list[tuple[Obj, float, float]], rng: np.random.Generator) -> Image.Image:
    """Objects at centres (x, y) on a dark, slightly noisy background."""
    background = rng.normal(45, 6, size=(IMAGE_SIZE, IMAGE_SIZE, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(background, mode="RGB")
    draw = ImageDraw.Draw(image)
    for obj, cx, cy in placed:
        _draw(draw, obj, cx, cy)
    return image


def _single(obj: Obj, position: str, rng: np.random.Generator) -> Image.Image:
    x = {"left": 7, "middle": 16, "right": 25}[position] + rng.uniform(-1.5, 1.5)
    return render([(obj, x, 16 + rng.uniform(-6, 6))], rng)


def _two(a: Obj, relation: str, b: Obj, rng: np.random.Generator) -> Image.Image:
    """``a`` <relation> ``b``; for "and" the order on the canvas is random."""
    near, far, jitter = 9 + rng.uniform(-1, 1), 23 + rng.uniform(-1, 1), rng.uniform(-4, 4, size=2)
    if relation == "and":
        relation = "left of" if rng.random() < 0.5 else "right of"
    if relation in ("left of", "right of"):
        ax, bx = (near, far) if relation == "left of" else (far, near)
        return render([(a, ax, 16 + jitter[0]), (b, bx, 16 + jitter[1])], rng)
    ay, by = (near, far) if relation == "above" else (far, near)
    return render([(a, 16 + jitter[0], ay), (b, 16 + jitter[1], by)], rng)


def _two_caption(a: Obj, relation: str, b: Obj) -> str:
    return f"a {a.phrase} {relation} a {b.phrase}"


def _family(a: Obj, b: Obj) -> tuple[frozenset[str], frozenset[str]]:
    return frozenset((a.colour, b.colour)), frozenset((a.shape, b.shape))


def _eligible_families() -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Two distinct colours x two distinct shapes whose four colour-shape combinations are all seen."""
    out = []
    for colours in itertools.combinations(COLOURS, 2):
        for shapes in itertools.combinations(SHAPES, 2):
            if not any((c, s) in HELD_OUT for c in colours for s in shapes):
                out.append((colours, shapes))
    return out


def reserved_families() -> frozenset[tuple[frozenset[str], frozenset[str]]]:
    """Every other eligible family (a fixed, documented choice): test-only."""
    return frozenset((frozenset(c), frozenset(s)) for c, s in _eligible_families()[::2])


class ShapesClassification(ImageDataset):
    """Single-object scenes labelled with one of 60 classes "<colour> <shape> <where>".

    ``train`` draws only classes whose colour-shape pair is not held out; ``test`` cycles through
    all classes (``n`` images, balanced). ``held_out_classes`` lists the classes never trained on.
    ``sizes=True``: 120 classes "<size> <colour> <shape> <where>" (the train captions name sizes too);
    the images are those of ``sizes=False`` but for the drawn size, which the label now fixes.
    """

    def __init__(self, split: str = "test", n: int = 600, seed: int = 0, sizes: bool = False) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"shapes-world has splits 'train' and 'test', not {split!r}")
        self.split, self.n, self.seed, self.sizes = split, n, seed, sizes
        combos = list(itertools.product(COLOURS, SHAPES, POSITIONS))
        self._parts = [(z, *p) for p in combos for z in SIZES] if sizes else [(None, *p) for p in combos]
        self.classes = [(f"{z} " if z else "") + f"{c} {s} {POSITIONS[w]}" for z, c, s, w in self._parts]
        allowed = [i for i, (_, c, s, _) in enumerate(self._parts) if split == "test" or (c, s) not in HELD_OUT]
        self.labels = [allowed[i % len(allowed)] for i in range(n)]

    @property
    def held_out_classes(self) -> list[int]:
        return [i for i, (_, c, s, _) in enumerate(self._parts) if (c, s) in HELD_OUT]

    def __len__(self) -> int:
        return self.n

    def load(self, index: int) -> tuple[Image.Image, int]:
        rng = _rng(self.seed, self.split, index)
        label = self.labels[index]
        fixed_size, colour, shape, position = self._parts[label]
        size = "small" if rng.random() < 0.5 else "large"  # drawn either way: the same stream of randomness
        return _single(Obj(colour, shape, fixed_size or size), position, rng), label

    def image_id(self, index: int) -> str:
        return f"shapes-{self.split}-{self.seed}-{index:06d}"


class CaptionedShapes(Dataset):
    """The train corpus for the world's CLIP and diffusion model: (image, caption) pairs.

    Half single-object scenes, half two-object scenes; no held-out combination, no reserved family.
    """

    def __init__(self, n: int = 20000, seed: int = 0) -> None:
        self.n, self.seed = n, seed
        self.objects = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT]
        self.reserved = reserved_families()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Image.Image, str]:
        rng = _rng(self.seed, "train", index)
        if index % 2 == 0:
            colour, shape = self.objects[rng.integers(len(self.objects))]
            size, position = rng.choice(list(SIZES)), rng.choice(list(POSITIONS))
            template = TRAIN_SINGLE_TEMPLATES[rng.integers(len(TRAIN_SINGLE_TEMPLATES))]
            caption = template.format(size=size, colour=colour, shape=shape, where=POSITIONS[position])
            return _single(Obj(colour, shape, str(size)), str(position), rng), caption
        while True:  # rejection keeps the reserved families out of train
            i, j = rng.choice(len(self.objects), size=2, replace=False)
            a, b = Obj(*self.objects[i]), Obj(*self.objects[j])
            if a.colour != b.colour and a.shape != b.shape and _family(a, b) not in self.reserved:
                break
        relation = str(rng.choice(RELATIONS))
        return _two(a, relation, b, rng), _two_caption(a, relation, b)


def _swapped(swap: str, a: Obj, b: Obj) -> tuple[Obj, Obj]:
    if swap == "attribute":  # a red circle ... a blue square  <->  a blue circle ... a red square
        return Obj(b.colour, a.shape), Obj(a.colour, b.shape)
    if swap == "relation":  # a red circle left of a blue square  <->  a blue square left of a red circle
        return b, a
    return Obj(a.colour, b.shape), Obj(b.colour, a.shape)  # object: the shapes trade places


def _pair_specs() -> list[tuple[str, Obj, str, Obj]]:
    """Every distinct (swap, a, relation, b) from the reserved families, each unordered pair once."""
    specs, seen = [], set()
    for colours, shapes in sorted((sorted(c), sorted(s)) for c, s in reserved_families()):
        for (c1, c2), (s1, s2) in itertools.product(itertools.permutations(colours), itertools.permutations(shapes)):
            a, b = Obj(c1, s1), Obj(c2, s2)
            for swap in ("attribute", "relation", "object"):
                # "and" says nothing about order, so only the attribute swap can use it
                for relation in RELATIONS if swap == "attribute" else RELATIONS[:4]:
                    a2, b2 = _swapped(swap, a, b)
                    key = frozenset({_two_caption(a, relation, b), _two_caption(a2, relation, b2)})
                    if key not in seen:
                        seen.add(key)
                        specs.append((swap, a, relation, b))
    return specs


def caption_pairs(n: int | None = None, seed: int = 0) -> list[Pair]:
    """Winoground-style pairs from the reserved families (all distinct ones, or ``n`` of them by seed)."""
    specs = _pair_specs()
    order = np.random.default_rng([seed, _SPLIT_CODE["pairs"]]).permutation(len(specs))
    if n is not None and n > len(specs):
        raise ValueError(f"the shapes world has {len(specs)} distinct pairs; asked for {n}")
    pairs = []
    for index in order[: len(specs) if n is None else n]:
        swap, a, relation, b = specs[index]
        a2, b2 = _swapped(swap, a, b)
        rng = _rng(seed, "pairs", int(index))
        captions = (_two_caption(a, relation, b), _two_caption(a2, relation, b2))
        pairs.append(Pair(captions, (_two(a, relation, b, rng), _two(a2, relation, b2, rng)), swap))
    return pairs


class ShapesPairs(PairDataset):
    """The world's Winoground-style pairs as a dataset (all distinct pairs, or ``n`` of them by seed)."""

    def __init__(self, n: int | None = None, seed: int = 0) -> None:
        self.seed = seed
        self.pairs = caption_pairs(n, seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> ImagePair:
        pair = self.pairs[index]
        return ImagePair(pair.images, pair.captions, pair.swap)

    def pair_id(self, index: int) -> str:
        return f"shapes-pairs-{self.seed}-{index:04d}"


@DATASETS.register("shapes-world-pairs")
def shapes_world_pairs(n: int | None = None, seed: int = 0) -> ShapesPairs:
    """The shapes world's Winoground-style pairs (attribute, relation and object swaps; 234 in all)."""
    return ShapesPairs(n, seed)


@DATASETS.register("shapes-world")
def shapes_world(split: str = "test", n: int = 600, seed: int = 0, sizes: bool = False) -> ShapesClassification:
    """The generated shapes world: 60 classes (colour x shape x position; x size: 120), held-out pairs in test."""
    return ShapesClassification(split, n, seed, sizes)
