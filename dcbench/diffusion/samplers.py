"""Timestep samplers: which t the Monte Carlo estimate of each class's error uses (strategy objects).

A sampler returns an ordered pool of distinct timesteps; the pruning schedule decides which
positions of that pool each stage evaluates. Samplers never see a model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

from dcbench.registry import SAMPLERS

__all__ = ["EvenSampler", "FixedSampler", "TimestepSampler", "UniformSampler", "WindowSampler", "even_timesteps"]


def even_timesteps(n: int, num_train_timesteps: int, low: int = 0, high: int | None = None) -> list[int]:
    """The reference rule: ``range(start, T, T // n)[:n]`` with ``start = T // n // 2``, on [low, high)."""
    high = num_train_timesteps if high is None else high
    span = high - low
    if not 0 < n <= span:
        raise ValueError(f"cannot place {n} distinct timesteps in [{low}, {high})")
    stride = span // n
    return [low + t for t in range(stride // 2, span, stride)][:n]


class TimestepSampler(ABC):
    """Produces ``n`` distinct timesteps in [0, T); ``generator`` carries the per-image seed."""

    #: how many timesteps the sampler itself implies (a fixed list), or None
    default_n: int | None = None

    @abstractmethod
    def __call__(self, n: int, num_train_timesteps: int, generator: torch.Generator) -> list[int]: ...


class EvenSampler(TimestepSampler):
    """Evenly spaced over [0, T): the reference rule, and the best strategy in the paper (Fig. 4)."""

    def __call__(self, n: int, num_train_timesteps: int, generator: torch.Generator) -> list[int]:
        return even_timesteps(n, num_train_timesteps)


class UniformSampler(TimestepSampler):
    """Distinct timesteps drawn uniformly at random (per image, from its seed), sorted ascending."""

    def __call__(self, n: int, num_train_timesteps: int, generator: torch.Generator) -> list[int]:
        if not 0 < n <= num_train_timesteps:
            raise ValueError(f"cannot draw {n} distinct timesteps from [0, {num_train_timesteps})")
        return sorted(torch.randperm(num_train_timesteps, generator=generator)[:n].tolist())


class FixedSampler(TimestepSampler):
    """A user-given list; asking for fewer takes an evenly spread subset of it."""

    def __init__(self, timesteps: Sequence[int]) -> None:
        if not timesteps:
            raise ValueError("the fixed sampler needs a non-empty list of timesteps")
        if len(set(timesteps)) != len(timesteps):
            raise ValueError(f"fixed timesteps must be distinct, got {list(timesteps)}")
        self.timesteps = [int(t) for t in timesteps]
        self.default_n = len(self.timesteps)

    def __call__(self, n: int, num_train_timesteps: int, generator: torch.Generator) -> list[int]:
        bad = [t for t in self.timesteps if not 0 <= t < num_train_timesteps]
        if bad:
            raise ValueError(f"fixed timesteps {bad} are outside [0, {num_train_timesteps})")
        if n > len(self.timesteps):
            raise ValueError(f"{n} timesteps asked of a fixed list of {len(self.timesteps)}")
        return [self.timesteps[i] for i in even_timesteps(n, len(self.timesteps))]


class WindowSampler(TimestepSampler):
    """Evenly spaced inside [center - width/2, center + width/2), clipped to [0, T) (Fig. 4's windows)."""

    def __init__(self, center: int = 500, width: int = 500) -> None:
        if width <= 0:
            raise ValueError(f"window width must be positive, got {width}")
        self.center, self.width = int(center), int(width)

    def __call__(self, n: int, num_train_timesteps: int, generator: torch.Generator) -> list[int]:
        low = max(0, self.center - self.width // 2)
        high = min(num_train_timesteps, low + self.width)
        return even_timesteps(n, num_train_timesteps, low, high)


@SAMPLERS.register("even")
def even() -> EvenSampler:
    """Evenly spaced timesteps (the reference rule)."""
    return EvenSampler()


@SAMPLERS.register("uniform")
def uniform() -> UniformSampler:
    """Distinct uniformly random timesteps, seeded per image."""
    return UniformSampler()


@SAMPLERS.register("fixed")
def fixed(timesteps: Sequence[int]) -> FixedSampler:
    """A fixed list of timesteps."""
    return FixedSampler(timesteps)


@SAMPLERS.register("window")
def window(center: int = 500, width: int = 500) -> WindowSampler:
    """Evenly spaced timesteps in a window around ``center``."""
    return WindowSampler(center, width)
