import numpy as np

from dcbench.data.digits import DigitsDataset, digits_split
from dcbench.registry import DATASETS


def test_fixed_stratified_split():
    train, test = digits_split("train"), digits_split("test")
    assert len(train) == 1437 and len(test) == 360
    assert not set(train) & set(test)
    labels = np.array([DigitsDataset("test").load(i)[1] for i in range(360)])
    assert np.bincount(labels).min() >= 35  # every digit well represented (stratified)
    assert np.array_equal(digits_split("test"), test)  # fixed


def test_items_and_ids():
    ds = DATASETS.build({"name": "digits", "split": "test"})
    image, label = ds[0]
    assert image.size == (8, 8) and image.mode == "L" and 0 <= label <= 9
    assert ds.image_id(0) == f"digits-{digits_split('test')[0]:04d}"
    assert len({ds.image_id(i) for i in range(len(ds))}) == len(ds)
    assert ds.classes == [str(d) for d in range(10)]
