"""The Diffusion Classifier on image-text pairs (Winoground's setting, Li et al. 2023 Eq. 9)."""

from __future__ import annotations

import pytest
import torch

from dcbench.diffusion.pruning import NoPruning
from dcbench.diffusion.samplers import EvenSampler
from dcbench.matching import MatchingTask, winoground_scores
from dcbench.scorers.diffusion_classifier import DiffusionClassifier


@pytest.fixture
def dc(text_planted) -> DiffusionClassifier:
    return DiffusionClassifier(text_planted, EvenSampler(), NoPruning(5), seed=3)


def test_diffusion_classifier_pair_scores_find_the_planted_matches(dc, templates):
    images = templates[[2, 5]]
    scores, nfe = dc.text_image_scores(images, ["c2", "c5"], key="pair-7")
    assert scores.shape == (2, 2) and nfe == 2 * 2 * 5
    assert scores[0, 0] == pytest.approx(0, abs=1e-6) and scores[1, 1] == pytest.approx(0, abs=1e-6)
    assert all(winoground_scores(scores.tolist()).values())
    swapped, _ = dc.text_image_scores(images, ["c5", "c2"], key="pair-7")
    assert torch.allclose(swapped, scores.flip(1))


def test_diffusion_classifier_pair_shares_noise_across_images_and_captions(dc, templates):
    dc.text_image_scores(templates[[1, 4]], ["c1", "c4"], key="pair-0")
    x_t = torch.cat([c[0] for c in dc.backbone.calls])
    t = torch.cat([c[1] for c in dc.backbone.calls])
    assert len(t) == 20  # queries go image by image: 5 samples x 2 captions for image 1, then for image 4
    x0 = templates[[1] * 10 + [4] * 10]
    a = dc.backbone.process.alphas_cumprod[t].view(-1, 1, 1, 1)
    eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
    for i in range(20):  # every query at the same t used the same eps, whichever image and caption
        same_t = t == t[i]
        assert same_t.sum() == 4
        assert torch.allclose(eps[same_t], eps[i].expand_as(eps[same_t]), atol=1e-4)
    assert len(set(t.tolist())) == 5


def test_diffusion_classifier_pair_scores_leave_the_label_set_alone(dc, labels):
    dc.prepare(labels)
    cond = dc.cond.clone()
    dc.text_image_scores(torch.zeros(2, 1, 4, 4), ["c0", "c1"], key="k")
    assert dc.labels is labels and torch.equal(dc.cond, cond)


def test_matching_task_runs_the_diffusion_classifier(dc, templates):
    task = MatchingTask(dc)
    batch = {"images": templates[torch.tensor([[0, 3], [4, 1]])], "captions": [["c0", "c3"], ["c4", "c1"]],
             "tag": ["object", "relation"], "id": ["p0", "p1"]}
    records = task.predict_step(batch, 0)
    assert [r["id"] for r in records] == ["p0", "p1"]
    assert all(r["group"] and r["nfe"] == 20 for r in records)
    assert records[1]["tag"] == "relation" and len(records[1]["scores"]) == 2
