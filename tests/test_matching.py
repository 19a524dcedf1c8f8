"""Image-text matching: Winoground's three scores, the metrics, and the Diffusion Classifier's pair scores."""

from __future__ import annotations

import pytest
import torch

from dcbench.matching import MatchingTask, matching_metrics, winoground_scores


@pytest.mark.parametrize(("scores", "expected"), [
    # each image prefers its caption and each caption its image
    ([[0.9, 0.1], [0.2, 0.8]], (True, True, True)),
    # both images prefer caption 0: text fails (image 1), image score holds
    ([[0.9, 0.1], [0.5, 0.4]], (False, True, False)),
    # image 0 prefers its caption, image 1 too, but caption 1 prefers image 0: text yes, image no
    ([[0.9, 0.85], [0.2, 0.8]], (True, False, False)),
    # captions prefer their images, but image 0 prefers caption 1: image yes, text no
    ([[0.5, 0.6], [0.1, 0.7]], (False, True, False)),
    # ties count as failures (a scorer that cannot tell the captions apart scores 0)
    ([[0.5, 0.5], [0.5, 0.5]], (False, False, False)),
])
def test_winoground_scores_on_hand_made_cases(scores, expected):
    got = winoground_scores(scores)
    assert (got["text"], got["image"], got["group"]) == expected


def test_matching_metrics_by_tag():
    records = [
        {"tag": "object", "text": True, "image": True, "group": True, "nfe": 8, "seconds": 1.0},
        {"tag": "object", "text": True, "image": False, "group": False, "nfe": 8, "seconds": 3.0},
        {"tag": "relation", "text": False, "image": True, "group": False, "nfe": 8, "seconds": 2.0},
    ]
    m = matching_metrics(records)
    assert m["n_pairs"] == 3
    assert m["text_score"] == pytest.approx(2 / 3) and m["image_score"] == pytest.approx(2 / 3)
    assert m["group_score"] == pytest.approx(1 / 3)
    assert m["by_tag"]["object"] == {"n": 2, "text_score": 1.0, "image_score": 0.5, "group_score": 0.5}
    assert m["by_tag"]["relation"]["group_score"] == 0.0
    assert m["nfe_per_pair"] == 8 and m["seconds_per_pair"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no records"):
        matching_metrics([])


def test_matching_task_needs_a_scorer_that_scores_pairs():
    class ImageOnly(torch.nn.Module):
        image_size, image_channels = None, 3

    with pytest.raises(TypeError, match="cannot score image-text pairs"):
        MatchingTask(ImageOnly())


class DotScorer(torch.nn.Module):
    """s(I, C) = mean pixel of I times the number in caption C: a scorer whose answers are known."""

    image_size, image_channels = 2, 3

    def text_image_scores(self, images, texts, key=""):
        return images.mean(dim=(1, 2, 3))[:, None] * torch.tensor([float(t) for t in texts]), 7


def test_matching_task_records():
    images = torch.stack([torch.stack([torch.full((3, 2, 2), 1.0), torch.full((3, 2, 2), -1.0)])] * 2)
    batch = {"images": images, "captions": [["1", "-1"], ["-1", "1"]], "tag": ["object", "relation"],
             "id": ["p0", "p1"]}
    records = MatchingTask(DotScorer()).predict_step(batch, 0)
    assert [r["id"] for r in records] == ["p0", "p1"]
    assert records[0]["scores"] == [[1.0, -1.0], [-1.0, 1.0]] and records[0]["group"]
    assert records[1]["scores"] == [[-1.0, 1.0], [1.0, -1.0]] and not records[1]["text"]
    assert records[1]["tag"] == "relation" and records[0]["nfe"] == 7 and records[0]["captions"] == ["1", "-1"]
