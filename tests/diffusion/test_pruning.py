import pytest
import torch

from dcbench.diffusion.pruning import NoPruning, SequentialTest, StagedPruning, stratified_order
from dcbench.diffusion.samplers import EvenSampler, FixedSampler, even_timesteps


def nfe(schedule: StagedPruning, n_classes: int) -> int:
    """Denoiser evaluations per image when every stage keeps exactly to_keep[k] candidates."""
    alive, total = n_classes, 0
    for stage, new in enumerate(schedule.stages(schedule.pool_size(EvenSampler()))):
        total += alive * len(new)
        alive = min(alive, schedule.to_keep[stage])
    return total


def test_official_cifar10_stages_hand_computed():
    s = StagedPruning(n_samples=[50, 500], to_keep=[5, 1])
    pool = even_timesteps(s.pool_size(EvenSampler()), 1000)
    first, second = s.stages(500)
    # stage 1: positions 5, 15, ..., 495 -> timesteps 1 + 2 * position = 11, 31, ..., 991
    assert [pool[p] for p in first] == [11 + 20 * k for k in range(50)]
    # stage 2: every other position of the pool, in order
    assert second == [p for p in range(500) if p % 10 != 5]
    assert nfe(s, 10) == 10 * 50 + 5 * 450 == 2750


def test_official_imagenet_stages_hand_computed():
    s = StagedPruning(n_samples=[50, 100, 500, 1000], to_keep=[500, 50, 10, 1])
    stages = s.stages(1000)  # pool = timesteps 0..999, so positions are timesteps
    assert stages[0] == [10 + 20 * k for k in range(50)]
    assert stages[1] == [5 + 10 * k for k in range(100)]  # disjoint from stage 1
    assert stages[2] == [t for t in range(1, 1000, 2) if t % 10 != 5]  # odd t not seen in stage 2
    assert len(stages[3]) == 1000 - 50 - 100 - 400
    # The exact reference rule costs 124,500 NFE (the paper's ~100,000 assumes nested stages).
    assert nfe(s, 1000) == 1000 * 50 + 500 * 100 + 50 * 400 + 10 * 450 == 124_500


def test_official_pets_and_food_nfe():
    assert nfe(StagedPruning([25, 250], [5, 1]), 37) == 37 * 25 + 5 * 225 == 2050
    assert nfe(StagedPruning([20, 50, 100, 500], [20, 10, 5, 1]), 101) == 101 * 20 + 20 * 50 + 10 * 80 + 5 * 350


def test_keep_is_smallest_mean_error_over_all_samples():
    s = StagedPruning([2, 4], [2, 1])
    errors = torch.tensor([[0.5, 0.5], [0.1, 0.9], [0.2, 0.2], [0.9, 0.0]])  # means .5 .5 .2 .45
    assert s.keep(0, errors).tolist() == [2, 3]


def test_no_pruning_single_stage_keeps_all():
    s = NoPruning(10)
    assert s.stages(10) == [list(range(10))]
    assert s.keep(0, torch.rand(4, 10)).tolist() == [0, 1, 2, 3]
    assert NoPruning().pool_size(FixedSampler([1, 2, 3])) == 3
    with pytest.raises(ValueError, match=r"n_samples"):
        NoPruning().pool_size(EvenSampler())


@pytest.mark.parametrize(("n", "k"), [([1, 2], [1]), ([], []), ([5, 10], [3, 2]), ([0, 5], [2, 1])])
def test_staged_validation(n, k):
    with pytest.raises(ValueError):
        StagedPruning(n, k)


def test_stratified_order_is_a_permutation_with_spread_prefixes():
    for n in (1, 3, 10, 64):
        assert sorted(stratified_order(n)) == list(range(n))
    order = stratified_order(64)
    for k in (4, 8, 16):  # every prefix of 2^j positions has one position in each of its 2^j strata
        assert sorted(p * k // 64 for p in order[:k]) == list(range(k))


def test_sequential_rounds_cover_the_pool_once():
    schedule = SequentialTest(round_size=3, max_samples=20, min_samples=5)
    stages = schedule.stages(20)
    assert len(stages[0]) == 5 and all(len(s) == 3 for s in stages[1:-1])
    assert sorted(p for s in stages for p in s) == list(range(20))


def test_sequential_keep_drops_only_the_significantly_worse():
    g = torch.Generator().manual_seed(0)
    shared = torch.rand(1, 30, generator=g)  # what every candidate's error shares (the timestep's difficulty)
    jitter = 0.01 * torch.randn(4, 30, generator=g)
    errors = shared + jitter + torch.tensor([[0.0], [0.001], [0.05], [0.2]])
    for test in SequentialTest.TESTS:
        assert SequentialTest(alpha=0.01, test=test).keep(0, errors).tolist() == [0, 1]
    assert SequentialTest(alpha=0.01).keep(0, errors[:, :1]).tolist() == [0, 1, 2, 3]  # one sample: no test


def test_sequential_rejects_bad_settings():
    with pytest.raises(ValueError, match="alpha"):
        SequentialTest(alpha=0)
    with pytest.raises(ValueError, match="round_size"):
        SequentialTest(round_size=0)
    with pytest.raises(ValueError, match="unknown test"):
        SequentialTest(test="z")
