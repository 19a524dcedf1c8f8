from collections import Counter

import numpy as np
import pytest

from dcbench.data.labels import LabelSet
from dcbench.data.world import (
    CLASS_PROMPT_TEMPLATE,
    COLOURS,
    HELD_OUT,
    CaptionedShapes,
    ShapesClassification,
    caption_pairs,
    reserved_families,
)
from dcbench.registry import DATASETS

TRAIN = CaptionedShapes(n=3000, seed=0)
TRAIN_CAPTIONS = {TRAIN[i][1] for i in range(len(TRAIN))}


def same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_deterministic_by_seed():
    a, b, c = CaptionedShapes(10, seed=3), CaptionedShapes(10, seed=3), CaptionedShapes(10, seed=4)
    assert all(a[i][1] == b[i][1] and same(a[i][0], b[i][0]) for i in range(10))
    assert any(a[i][1] != c[i][1] or not same(a[i][0], c[i][0]) for i in range(10))
    p, q = caption_pairs(5, seed=1), caption_pairs(5, seed=1)
    assert [x.captions for x in p] == [x.captions for x in q] and same(p[0].images[1], q[0].images[1])
    assert same(ShapesClassification("test", 5).load(4)[0], ShapesClassification("test", 5).load(4)[0])


def test_no_test_caption_or_prompt_is_a_train_caption():
    pairs = caption_pairs()
    test_texts = {c for p in pairs for c in p.captions}
    prompts = set(LabelSet.from_classes(ShapesClassification().classes, [CLASS_PROMPT_TEMPLATE]).prompts)
    assert not test_texts & TRAIN_CAPTIONS
    assert not prompts & TRAIN_CAPTIONS


def test_train_never_shows_a_held_out_combination():
    for caption in TRAIN_CAPTIONS:
        for colour, shape in HELD_OUT:
            assert f"{colour} {shape}" not in caption
    train = ShapesClassification("train", 300)
    held_out = set(train.held_out_classes)
    assert len(held_out) == 12 and not held_out & set(train.labels)


def test_classification_task_has_60_balanced_classes():
    ds = DATASETS.build({"name": "shapes-world", "split": "test", "n": 120})
    assert len(ds.classes) == 60 and Counter(ds.labels) == dict.fromkeys(range(60), 2)
    image, label = ds.load(0)
    assert image.size == (32, 32) and ds.classes[label] == "red circle on the left"
    # the object is drawn where the class says, in its colour
    pixels = np.asarray(image).astype(float)
    reddest = np.unravel_index(np.argmax(pixels[..., 0] - pixels[..., 1:].mean(-1)), pixels.shape[:2])
    assert reddest[1] < 12


def test_pairs_swap_words_not_vocabulary():
    pairs = caption_pairs()
    assert len(pairs) >= 200
    assert Counter(p.swap for p in pairs) == {"attribute": 90, "relation": 72, "object": 72}
    assert len({frozenset(p.captions) for p in pairs}) == len(pairs)
    for p in pairs:
        first, second = p.captions
        assert first != second and sorted(first.split()) == sorted(second.split())
        assert not same(p.images[0], p.images[1])
    with pytest.raises(ValueError, match="distinct pairs"):
        caption_pairs(10_000)


def test_reserved_families_avoid_held_out_combinations():
    for colours, shapes in reserved_families():
        assert len(colours) == 2 and len(shapes) == 2 and colours <= set(COLOURS)
        assert not any((c, s) in HELD_OUT for c in colours for s in shapes)


def test_sized_classes_fix_the_size_and_keep_the_scene():
    plain, sized = ShapesClassification("test", n=240), ShapesClassification("test", n=240, sizes=True)
    assert len(plain.classes) == 60 and len(sized.classes) == 120
    assert sized.classes[:2] == ["small red circle on the left", "large red circle on the left"]
    assert len(sized.held_out_classes) == 2 * len(plain.held_out_classes)
    for index in range(0, 240, 7):
        image, label = sized.load(index)
        assert sized.classes[label].split(" ", 1)[1] in plain.classes
        assert image.size == (32, 32)
    # the label's size is the size drawn: small shapes cover fewer pixels than large ones
    area = {"small": [], "large": []}
    for index in range(120):
        image, label = sized.load(index)
        pixels = np.asarray(image).astype(int)
        area[sized.classes[label].split()[0]].append((np.abs(pixels - pixels[0, 0]).sum(-1) > 60).sum())
    assert np.mean(area["small"]) < 0.8 * np.mean(area["large"])
