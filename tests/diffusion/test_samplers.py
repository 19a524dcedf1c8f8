import pytest
import torch

from dcbench.diffusion.samplers import EvenSampler, FixedSampler, UniformSampler, WindowSampler, even_timesteps
from dcbench.registry import SAMPLERS

G = torch.Generator().manual_seed(0)


def test_even_rule_official_cifar10_pool():
    # max(n_samples) = 500, T = 1000: start = 1000 // 500 // 2 = 1, stride 2
    assert even_timesteps(500, 1000) == [1 + 2 * k for k in range(500)]


def test_even_rule_official_imagenet_pool():
    # max(n_samples) = 1000: start = 0, stride 1 -> every timestep
    assert even_timesteps(1000, 1000) == list(range(1000))


def test_even_rule_small_cases():
    assert even_timesteps(10, 1000) == [50, 150, 250, 350, 450, 550, 650, 750, 850, 950]
    assert even_timesteps(3, 10) == [1, 4, 7]  # stride 3, start 1, range(1, 10, 3)[:3]
    with pytest.raises(ValueError):
        even_timesteps(0, 1000)


def test_uniform_is_seeded_distinct_and_sorted():
    a = UniformSampler()(50, 1000, torch.Generator().manual_seed(3))
    b = UniformSampler()(50, 1000, torch.Generator().manual_seed(3))
    c = UniformSampler()(50, 1000, torch.Generator().manual_seed(4))
    assert a == b and a != c
    assert len(set(a)) == 50 and a == sorted(a) and all(0 <= t < 1000 for t in a)


def test_fixed_sampler_subsets_evenly_and_validates():
    s = FixedSampler([100, 200, 300, 400])
    assert s.default_n == 4
    assert s(4, 1000, G) == [100, 200, 300, 400]
    assert s(2, 1000, G) == [200, 400]  # positions even_timesteps(2, 4) = [1, 3]
    with pytest.raises(ValueError, match=r"fixed list of 4"):
        s(5, 1000, G)
    with pytest.raises(ValueError, match=r"outside"):
        FixedSampler([5, 2000])(2, 1000, G)
    with pytest.raises(ValueError, match=r"distinct"):
        FixedSampler([5, 5])


def test_window_sampler_stays_in_window():
    ts = WindowSampler(center=500, width=200)(10, 1000, G)
    assert ts == [410, 430, 450, 470, 490, 510, 530, 550, 570, 590]
    clipped = WindowSampler(center=50, width=200)(4, 1000, G)
    assert min(clipped) >= 0 and max(clipped) < 200


def test_registry_builds_each_sampler():
    assert isinstance(SAMPLERS.build("even"), EvenSampler)
    assert isinstance(SAMPLERS.build({"name": "fixed", "timesteps": [1, 2]}), FixedSampler)
    assert set(SAMPLERS.names()) >= {"even", "uniform", "fixed", "window"}
