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

__all__ = ["NoPruning", "PruningSchedule", "SequentialTest", "StagedPruning", "stratified_order"]


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


def stratified_order(n: int) -> list[int]:
    """Positions 0..n-1 in van der Corput order: every prefix is spread evenly over the pool.

    With an evenly spaced pool of timesteps (the ``even`` sampler), the first k positions of this
    order cover [0, T) about evenly for every k, so rounds can stop at any point and still have
    the evenly spread timesteps the paper found best (Fig. 4).
    """
    order: list[int] = []
    seen: set[int] = set()
    i = 0
    while len(order) < n:
        v, f, k = 0.0, 0.5, i
        while k:  # radical inverse of i in base 2
            v, k, f = v + f * (k & 1), k >> 1, f / 2
        position = min(int(v * n + 0.5), n - 1)
        if position not in seen:
            seen.add(position)
            order.append(position)
        i += 1
    return order


class SequentialTest(PruningSchedule):
    """Prune with paired t-tests as evidence accumulates (Clark & Jaini 2023).

    Rounds of ``round_size`` new (t, eps) samples, in :func:`stratified_order`. After each round,
    every candidate whose paired error difference to the current best (lowest mean error) is
    significantly positive, one-sided t-test at level ``alpha``, leaves the race. Stops when one
    candidate is left or after ``max_samples`` samples; survivors are then ranked by mean error.

    The differences are paired: both candidates saw the same (t, eps), so the noise that dominates
    each error cancels in their difference. ``alpha`` is the level of each test at each look, not a
    family-wise guarantee; ``bonferroni`` divides it by the number of candidates tested.

    ``test``: ``t`` (the paired t-test of Clark & Jaini) or ``wilcoxon`` (signed-rank). Error differences
    span orders of magnitude across timesteps (tiny at large t, large at small t for a wrong class),
    which inflates the t-test's variance; the rank test does not care about scale.
    """

    TESTS = ("t", "wilcoxon")

    def __init__(self, alpha: float = 0.01, round_size: int = 4, max_samples: int = 64,
                 min_samples: int | None = None, bonferroni: bool = False, test: str = "t") -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if test not in self.TESTS:
            raise ValueError(f"unknown test {test!r}; choose one of {', '.join(self.TESTS)}")
        if round_size < 1 or max_samples < 2:
            raise ValueError("round_size must be >= 1 and max_samples >= 2")
        self.alpha, self.round_size, self.max_samples = float(alpha), int(round_size), int(max_samples)
        self.min_samples = max(2, int(min_samples if min_samples is not None else round_size))
        self.bonferroni, self.test = bonferroni, test

    def pool_size(self, sampler: TimestepSampler) -> int:
        return self.max_samples

    def stages(self, pool_size: int) -> list[list[int]]:
        order = stratified_order(pool_size)
        first = min(self.min_samples, pool_size)
        plan = [order[:first]]
        plan += [order[s : s + self.round_size] for s in range(first, pool_size, self.round_size)]
        return plan

    def keep(self, stage: int, errors: Tensor) -> Tensor:
        n_cand, n = errors.shape
        if n_cand == 1 or n < 2:
            return torch.arange(n_cand)
        errors = errors.double()
        best = errors.mean(dim=1).argmin()
        p_value = _one_sided_p(errors - errors[best], self.test)
        level = self.alpha / (n_cand - 1) if self.bonferroni else self.alpha
        keep = p_value >= level
        keep[best] = True
        return keep.nonzero().squeeze(1)


def _one_sided_p(diff: Tensor, test: str) -> Tensor:
    """Per row, the p-value of "this candidate's mean error is not above the best's" (H1: it is)."""
    from scipy import stats

    if test == "t":
        mean, sd = diff.mean(dim=1), diff.std(dim=1)
        # sd 0: identical errors (the best itself, or an exact tie): no evidence either way.
        t_stat = torch.where(sd > 0, mean / (sd / diff.shape[1] ** 0.5), torch.zeros_like(mean))
        return torch.from_numpy(stats.t.sf(t_stat.numpy(), df=diff.shape[1] - 1))
    p = torch.ones(diff.shape[0], dtype=torch.float64)
    nonzero = (diff != 0).any(dim=1)
    if nonzero.any():
        result = stats.wilcoxon(diff[nonzero].numpy(), alternative="greater", axis=1)
        p[nonzero] = torch.from_numpy(result.pvalue).double()
    return p


@PRUNING.register("none")
def none(n_samples: int | None = None) -> NoPruning:
    """No pruning: all candidates at ``n_samples`` timesteps."""
    return NoPruning(n_samples)


@PRUNING.register("staged")
def staged(n_samples: Sequence[int], to_keep: Sequence[int]) -> StagedPruning:
    """The paper's staged keep-lists (Algorithm 2), e.g. n_samples [50, 500], to_keep [5, 1]."""
    return StagedPruning(n_samples, to_keep)


@PRUNING.register("sequential")
def sequential(alpha: float = 0.01, round_size: int = 4, max_samples: int = 64, min_samples: int | None = None,
               bonferroni: bool = False, test: str = "t") -> SequentialTest:
    """Paired tests after every round of ``round_size`` samples; drop the significantly worse."""
    return SequentialTest(alpha, round_size, max_samples, min_samples, bonferroni, test)
