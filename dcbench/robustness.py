"""Effective robustness (Taori et al. 2020; Li et al. 2023, Fig. 6): OOD accuracy above what ID accuracy predicts.

Across many discriminative models trained on the same data, out-of-distribution accuracy is close to a
linear function of in-distribution accuracy once both are logit-scaled. :func:`fit_logit_linear` fits that
line to the baselines' (ID, OOD) points by least squares in logit space; a scorer's *effective robustness*
is its OOD accuracy minus the line's prediction at its ID accuracy (:func:`effective_robustness`), with a
Clopper-Pearson interval for its OOD accuracy (the paper's Fig. 6 shows 99.5 % intervals). The interval
covers the OOD sampling error only: the ID accuracy and the fit are taken as exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LogitLinearFit", "clopper_pearson", "effective_robustness", "fit_logit_linear", "logit",
           "robustness_section", "sigmoid"]

#: accuracies are clipped to [EPS, 1 - EPS] before the logit (0 % and 100 % have no logit)
EPS = 1e-4


def logit(p: float) -> float:
    """log(p / (1 - p)), with p clipped to [EPS, 1 - EPS]."""
    p = min(max(float(p), EPS), 1 - EPS)
    return math.log(p / (1 - p))


def sigmoid(z: float) -> float:
    """The inverse of :func:`logit`."""
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


@dataclass(frozen=True)
class LogitLinearFit:
    """logit(OOD) = slope * logit(ID) + intercept, fitted on ``n`` baselines (``r2`` in logit space)."""

    slope: float
    intercept: float
    n: int
    r2: float

    def predict(self, id_accuracy: float) -> float:
        """The OOD accuracy the line predicts for an ID accuracy."""
        return sigmoid(self.slope * logit(id_accuracy) + self.intercept)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_logit_linear(id_accuracy: Sequence[float], ood_accuracy: Sequence[float]) -> LogitLinearFit:
    """Least-squares line through the logit-scaled (ID, OOD) accuracies of the baselines."""
    if len(id_accuracy) != len(ood_accuracy):
        raise ValueError(f"{len(id_accuracy)} ID accuracies but {len(ood_accuracy)} OOD accuracies")
    if len(id_accuracy) < 2:
        raise ValueError(f"the fit needs at least 2 baselines, got {len(id_accuracy)}: add discriminative baselines")
    x = [logit(a) for a in id_accuracy]
    y = [logit(a) for a in ood_accuracy]
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxx = sum((a - mx) ** 2 for a in x)
    if sxx == 0:
        raise ValueError("every baseline has the same ID accuracy: the line is undefined. Use baselines whose ID "
                         "accuracies differ (other sizes or training lengths)")
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sxx
    intercept = my - slope * mx
    ss_res = sum((b - (slope * a + intercept)) ** 2 for a, b in zip(x, y, strict=True))
    ss_tot = sum((b - my) ** 2 for b in y)
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return LogitLinearFit(slope, intercept, len(x), r2)


def clopper_pearson(successes: int, trials: int, confidence: float = 0.995) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided interval for a binomial proportion."""
    from scipy.stats import beta

    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes}/{trials}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 1 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return low, high


def effective_robustness(fit: LogitLinearFit, id_accuracy: float, ood_correct: int, ood_n: int,
                         confidence: float = 0.995) -> dict[str, float]:
    """OOD accuracy, the line's prediction, and their difference with a Clopper-Pearson interval."""
    ood = ood_correct / ood_n
    predicted = fit.predict(id_accuracy)
    low, high = clopper_pearson(ood_correct, ood_n, confidence)
    return {"id_accuracy": id_accuracy, "ood_accuracy": ood, "ood_low": low, "ood_high": high,
            "predicted_ood": predicted, "effective_robustness": ood - predicted,
            "effective_robustness_low": low - predicted, "effective_robustness_high": high - predicted}


def robustness_section(top1: Mapping[str, Mapping[str, tuple[float, int]]], id_task: str, ood_tasks: Sequence[str],
                       baselines: Sequence[str], confidence: float = 0.995) -> dict[str, Any]:
    """Effective robustness of every scorer on every OOD task, from ``top1[task][scorer] = (accuracy, n_images)``.

    Per OOD task, the line is fitted to the ``baselines`` that have both accuracies; every scorer with both
    gets its residual. A task whose line cannot be fitted says why instead.
    """
    out: dict[str, Any] = {"id_task": id_task, "baselines": list(baselines), "confidence": confidence, "ood": {}}
    id_acc = top1.get(id_task, {})
    for task in ood_tasks:
        ood = top1.get(task, {})
        pairs = [(b, id_acc[b][0], ood[b][0]) for b in baselines if b in id_acc and b in ood]
        try:
            fit = fit_logit_linear([p[1] for p in pairs], [p[2] for p in pairs])
        except ValueError as err:
            out["ood"][task] = {"error": str(err)}
            continue
        rows = {scorer: effective_robustness(fit, id_acc[scorer][0], round(acc * n), n, confidence)
                for scorer, (acc, n) in ood.items() if scorer in id_acc}
        out["ood"][task] = {"fit": fit.to_dict(), "rows": rows}
    return out
