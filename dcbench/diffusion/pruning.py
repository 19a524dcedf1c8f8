"""Pruning schedules: how many (t, eps) samples each candidate gets, and which candidates survive.

A schedule plans stages over a pool of timestep *positions* (the sampler fills in the timesteps)
and, after each stage, says which of the remaining candidates to keep. Schedules never see a model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from dcbench.diffusion.samplers import TimestepSampler
from dcbench.registry import PRUNING

__all__ = ["NoPruning", "PruningSchedule", "StagedPruning"]


class PruningSchedule(ABC):
    """Plans the evaluation of one image."""

    @abstractmethod
    def pool_size(self, sampler: TimestepSampler) -> int:
        """How many distinct timesteps to ask the sampler for."""

    @abstractmethod
    def stages(self, pool_size: int) -> list[list[int]]:
        """Per stage, the pool positions evaluated for the first time, in evaluation order."""

    @abstractmethod
    def keep(self, stage: int, errors: Tensor) -> Tensor:
        """Indices (rows of ``errors``) of the candidates that go on after ``stage``.

        ``errors`` has one row per remaining candidate and one column per (t, eps) sample evaluated
        so far (every remaining candidate has seen the same samples).
        """


class NoPruning(PruningSchedule):
    """Every candidate at every timestep: the exhaustive estimate."""

    def __init__(self, n_samples: int | None = None) -> None:
        if n_samples is not None and n_samples <= 0:
            raise ValueError(f"n_samples must be positive, got {n_samples}")
        self.n_samples = n_samples

    def pool_size(self, sampler: TimestepSampler) -> int:
        n = self.n_samples or sampler.default_n
        if n is None:
            raise ValueError("set pruning.n_samples (how many timesteps to evaluate per class)")
        return n

    def stages(self, pool_size: int) -> list[list[int]]:
        return [list(range(pool_size))]

    def keep(self, stage: int, errors: Tensor) -> Tensor:
        return torch.arange(errors.shape[0])


class StagedPruning(PruningSchedule):
    """Algorithm 2 of the paper, exactly as the reference ``eval_prob_adaptive``.

    Stage k evaluates ``n_samples[k]`` positions spread over the pool,
    ``pool[len(pool)//n//2 :: len(pool)//n][:n]``, minus those already evaluated, for every
    remaining candidate; then keeps the ``to_keep[k]`` candidates with the smallest mean error over
    all their errors so far.
    """

    def __init__(self, n_samples: Sequence[int], to_keep: Sequence[int]) -> None:
        if len(n_samples) != len(to_keep) or not n_samples:
            raise ValueError(f"n_samples {list(n_samples)} and to_keep {list(to_keep)} must be non-empty "
                             "lists of the same length (one entry per stage)")
        if any(n <= 0 for n in n_samples) or any(k <= 0 for k in to_keep):
            raise ValueError("n_samples and to_keep must be positive")
        if to_keep[-1] != 1:
            raise ValueError(f"the last stage must keep exactly 1 candidate (to_keep ends with {to_keep[-1]})")
        self.n_samples = [int(n) for n in n_samples]
        self.to_keep = [int(k) for k in to_keep]

    def pool_size(self, sampler: TimestepSampler) -> int:
        return max(self.n_samples)

    def stages(self, pool_size: int) -> list[list[int]]:
        evaluated: set[int] = set()
        plan = []
        for n in self.n_samples:
            stride = pool_size // n
            chosen = list(range(pool_size))[stride // 2 :: stride][:n]
            new = [p for p in chosen if p not in evaluated]
            evaluated.update(new)
            plan.append(new)
        return plan

    def keep(self, stage: int, errors: Tensor) -> Tensor:
        k = min(self.to_keep[stage], errors.shape[0])
        # Negate and topk, as the reference does, so ties break the same way.
        return torch.topk(-errors.mean(dim=1), k=k).indices


@PRUNING.register("none")
def none(n_samples: int | None = None) -> NoPruning:
    """No pruning: all candidates at ``n_samples`` timesteps."""
    return NoPruning(n_samples)


@PRUNING.register("staged")
def staged(n_samples: Sequence[int], to_keep: Sequence[int]) -> StagedPruning:
    """The paper's staged keep-lists (Algorithm 2), e.g. n_samples [50, 500], to_keep [5, 1]."""
    return StagedPruning(n_samples, to_keep)
