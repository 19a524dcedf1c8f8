"""Pair datasets and the matching datamodule (resume by pair id)."""

from __future__ import annotations

import pytest

from dcbench.data.pairs import MatchingDataModule


def test_matching_datamodule_skips_done_pairs_and_limits():
    dm = MatchingDataModule({"name": "shapes-world-pairs"}, limit=5, skip_ids={"shapes-pairs-0-0001"},
                            image_size=16, batch_size=2)
    dm.setup()
    assert len(dm.all_ids) == 5 and len(dm.indices) == 4 and 1 not in dm.indices
    batch = next(iter(dm.predict_dataloader()))
    assert batch["images"].shape == (2, 2, 3, 16, 16)
    assert len(batch["captions"]) == 2 and len(batch["captions"][0]) == 2
    assert batch["id"] == ["shapes-pairs-0-0000", "shapes-pairs-0-0002"]
    assert set(batch["tag"]) <= {"attribute", "relation", "object"}


def test_matching_datamodule_refuses_a_classification_dataset():
    dm = MatchingDataModule({"name": "shapes-world", "n": 4})
    with pytest.raises(TypeError, match="not image-text pairs"):
        dm.setup()


def test_shapes_pairs_ids_are_stable():
    from dcbench.registry import DATASETS

    a, b = DATASETS.build({"name": "shapes-world-pairs"}), DATASETS.build({"name": "shapes-world-pairs"})
    assert len(a) == 234 and [a.pair_id(i) for i in range(len(a))] == [b.pair_id(i) for i in range(len(b))]
    assert a.load(3).captions == b.load(3).captions
