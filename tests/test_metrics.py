import pytest

from dcbench.metrics import classification_metrics


def record(label, prediction, probs, nfe=10, seconds=0.5):
    return {"label": label, "prediction": prediction, "probs": probs, "nfe": nfe, "seconds": seconds}


def test_metrics_on_hand_made_records():
    records = [
        record(0, 0, [0.9, 0.1]),
        record(0, 1, [0.4, 0.6]),
        record(1, 1, [0.2, 0.8], nfe=20, seconds=1.5),
        record(1, 1, [0.3, 0.7]),
    ]
    m = classification_metrics(records, 2)
    assert m["top1"] == pytest.approx(0.75)
    assert m["mean_per_class"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["per_class_accuracy"] == pytest.approx([0.5, 1.0])
    assert m["nfe_per_image"] == pytest.approx(12.5) and m["seconds_per_image"] == pytest.approx(0.75)
    assert "top5" not in m
    # ECE with 15 bins: confidences .9 .6 .8 .7 each alone in its bin, accuracies 1 0 1 1
    assert m["ece"] == pytest.approx((0.1 + 0.6 + 0.2 + 0.3) / 4, abs=1e-6)


def test_top5_and_absent_classes():
    probs = [0.3, 0.25, 0.2, 0.1, 0.1, 0.05]
    m = classification_metrics([record(4, 0, probs), record(5, 0, probs)], 6)
    assert m["top1"] == 0 and m["top5"] == pytest.approx(0.5)
    assert m["per_class_accuracy"][:4] == [None] * 4
    with pytest.raises(ValueError, match="no records"):
        classification_metrics([], 3)
