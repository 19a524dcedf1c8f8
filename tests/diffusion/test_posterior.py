import math

import pytest
import torch

from dcbench.diffusion.posterior import stagewise_probs

INF = float("inf")


def test_one_stage_is_the_plain_softmax():
    errors = torch.tensor([[0.30, 0.10, 0.20]])
    assert stagewise_probs(errors, 0.1) == pytest.approx(torch.softmax(-errors[0] / 0.1, 0).double())


def test_two_stages_by_hand():
    # Stage 0: classes 0, 1, 2 share samples; class 2 leaves. Stage 1: classes 0 and 1 on more samples.
    errors = torch.tensor([[0.10, 0.20, 0.40], [0.25, 0.15, INF]])
    e0 = [math.exp(-0.10), math.exp(-0.20), math.exp(-0.40)]
    p2 = e0[2] / sum(e0)
    rest = 1 - p2
    p1 = rest * math.exp(-0.15) / (math.exp(-0.25) + math.exp(-0.15))
    probs = stagewise_probs(errors, 1.0)
    assert probs.tolist() == pytest.approx([rest - p1, p1, p2])


def test_a_pruned_class_never_outweighs_the_winner():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        first = torch.rand(8, generator=g)
        keep = first.argsort()[:3]
        second = torch.full((8,), INF)
        second[keep] = torch.rand(3, generator=g)
        probs = stagewise_probs(torch.stack([first, second]), float(torch.rand(1, generator=g)) + 0.01)
        assert probs.sum().item() == pytest.approx(1.0)
        assert probs.argmax() == second.argmin()


def test_batched_rows_padded_with_inf_match_unpadded():
    short = torch.tensor([[0.1, 0.3]])
    padded = torch.tensor([[[0.1, 0.3], [INF, INF]]])
    assert stagewise_probs(padded, 0.2)[0] == pytest.approx(stagewise_probs(short, 0.2))
