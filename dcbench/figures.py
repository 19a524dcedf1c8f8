"""Figures for ``dcbench report`` and ``dcbench bench`` (matplotlib, Agg, PNG): score bars, reliability diagrams,
confusion matrices, effective robustness, the benchmark's curves.

Every function takes plain data read from run directories (metrics dicts, records) and writes one PNG.
Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, never through ``pyplot``:
no GUI backend, no global figure state, safe to call from any process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["accuracy_vs_nfe", "classification_bars", "confusion_figure", "confusion_matrix", "effective_robustness",
           "image_grid", "matching_bars", "nfe_vs_classes", "reliability_bins", "reliability_diagram", "wall_bars"]

#: accuracy ticks of logit-scaled axes
LOGIT_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999)
RELIABILITY_BINS = 15  # as metrics.ECE_BINS: the diagram shows the bins the ECE is computed over
DPI = 120


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path, dpi: int = DPI) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png")
    return path


def _colour(index: int) -> Any:
    from matplotlib import colormaps

    return colormaps["tab10"](index % 10)


def _value(metrics: Mapping[str, Any], key: str) -> float:
    value = metrics.get(key)
    return float(value) if isinstance(value, (int, float)) else math.nan


def _grouped_bars(ax: Any, groups: Sequence[str], series: Sequence[tuple[str, Sequence[float], Any]]) -> None:
    """One group of bars per entry of ``groups``, one bar per series (label, values, colour); NaN = no bar."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (label, values, colour) in enumerate(series):
        heights = np.asarray(values, dtype=float)
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, np.nan_to_num(heights), width, label=label,
                      color=colour)
        ax.bar_label(bars, labels=["" if math.isnan(v) else f"{v:.2f}" for v in heights], fontsize=6, padding=1)
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 1.08)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def classification_bars(path: Path, title: str, rows: Sequence[tuple[str, Mapping[str, Any], int]]) -> Path:
    """Top-1, held-out top-1 and mean-per-class accuracy per scorer. ``rows``: (scorer, metrics, colour index)."""
    groups = [("top1", "top-1"), ("top1_held_out", "held-out top-1"), ("mean_per_class", "mean per class")]
    groups = [(k, label) for k, label in groups if any(not math.isnan(_value(m, k)) for _, m, _ in rows)]
    figure = _figure(max(5.0, 1.2 + 0.5 * len(rows) * len(groups)), 3.6)
    ax = figure.add_subplot()
    _grouped_bars(ax, [label for _, label in groups],
                  [(name, [_value(m, k) for k, _ in groups], _colour(c)) for name, m, c in rows])
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(figure, path)


def matching_bars(path: Path, title: str, rows: Sequence[tuple[str, Mapping[str, Any], int]],
                  tags: Sequence[str]) -> Path:
    """Text, image and group score (one panel each) over all pairs and per swap type, one bar per scorer."""
    first = rows[0][1] if rows else {}
    groups = [f"all (n={first.get('n_pairs', '?')})"]
    groups += [f"{tag} (n={first.get('by_tag', {}).get(tag, {}).get('n', '?')})" for tag in tags]
    figure = _figure(max(6.0, len(groups) * (0.8 + 0.3 * len(rows))) + 1.8, 7.5)
    axes = figure.subplots(3, 1, sharex=True)
    for ax, kind in zip(axes, ("text", "image", "group"), strict=True):
        key = f"{kind}_score"
        series = [(name, [_value(m, key), *(_value(m.get("by_tag", {}).get(t, {}), key) for t in tags)], _colour(c))
                  for name, m, c in rows]
        _grouped_bars(ax, groups, series)
        ax.set_ylabel(f"{kind} score")
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[0].set_title(title)
    return _save(figure, path)


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = RELIABILITY_BINS
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin (equal width on [0, 1]): mean confidence, accuracy, count (NaN where empty).

    Confidence is the top probability and a hit is its class being the label, as in the ECE that
    torchmetrics computes for ``metrics.json`` (same bins: ``[b_i, b_i+1)``, 1.0 in the last).
    """
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    boundaries = np.linspace(0, 1, n_bins + 1)
    index = np.clip(np.searchsorted(boundaries, confidence, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=n_bins) / counts
        accuracy = np.bincount(index, weights=correct, minlength=n_bins) / counts
    return mean_confidence, accuracy, counts


def reliability_diagram(path: Path, title: str, panels: Sequence[tuple[str, np.ndarray, np.ndarray, float | None]],
                        n_bins: int = RELIABILITY_BINS) -> Path:
    """One panel per scorer: accuracy per confidence bin against the diagonal; ECE (from metrics.json) in the title.

    ``panels``: (scorer, probs (n, classes), labels (n,), ece).
    """
    n = max(len(panels), 1)
    figure = _figure(3.0 * n + 0.4, 3.4)
    axes = np.atleast_1d(figure.subplots(1, n, sharey=True))
    edges = np.linspace(0, 1, n_bins + 1)
    for ax, (name, probs, labels, ece) in zip(axes, panels, strict=False):
        confidence, accuracy, counts = reliability_bins(probs, labels, n_bins)
        filled = counts > 0
        ax.bar(edges[:-1][filled], accuracy[filled], width=1 / n_bins, align="edge", color="tab:blue",
               edgecolor="black", linewidth=0.4, label="accuracy")
        ax.bar(edges[:-1][filled], (confidence - accuracy)[filled], bottom=accuracy[filled], width=1 / n_bins,
               align="edge", color="tab:red", alpha=0.3, edgecolor="tab:red", linewidth=0.4, label="gap")
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (max prob)")
        ece_text = "ECE -" if ece is None else f"ECE {ece:.3f}"
        ax.set_title(f"{name}\n{ece_text}, n={len(labels)}", fontsize=9)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7, loc="upper left")
    figure.suptitle(title)
    return _save(figure, path)


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int], n_classes: int) -> np.ndarray:
    """Row-normalised confusion matrix: rows true class, columns predicted; NaN rows for absent classes."""
    counts = np.zeros((n_classes, n_classes))
    np.add.at(counts, (np.asarray(labels, dtype=int), np.asarray(predictions, dtype=int)), 1)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / totals, np.nan)


def confusion_figure(path: Path, title: str, matrix: np.ndarray, classes: Sequence[str]) -> Path:
    """The matrix as an image with every class name on both axes (sized so that 60 names stay readable)."""
    from matplotlib import colormaps

    n = len(classes)
    side = min(max(5.0, 0.18 * n + 3.0), 16.0)
    fontsize = 8 if n <= 20 else max(5.5, 8 - 0.05 * n)
    figure = _figure(side + 1.0, side)
    ax = figure.add_subplot()
    image = ax.imshow(matrix, cmap=colormaps["Blues"].with_extremes(bad="0.85"), vmin=0, vmax=1,
                      interpolation="nearest")
    ax.set_xticks(range(n), classes, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), classes, fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    figure.colorbar(image, ax=ax, shrink=0.6, label="fraction of the true class")
    return _save(figure, path, dpi=DPI if n <= 20 else 150)  # small class names need the pixels


# ---- dcbench bench -----------------------------------------------------------------------------------
_GROUP_STYLE = {"exhaustive": ("o-", 0), "reference": ("s", 3), "sequential": ("^-", 2)}


def accuracy_vs_nfe(path: Path, task: str, rows: Sequence[Mapping[str, Any]], ratio: Mapping[str, Any]) -> Path:
    """Accuracy vs NFE per image (log x), one curve per strategy group; the reference accuracy as a line."""
    figure = _figure(6.0, 3.8)
    ax = figure.add_subplot()
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    for group, members in groups.items():
        style, colour = _GROUP_STYLE.get(group, ("x", 5))
        members = sorted(members, key=lambda r: r["nfe_per_image"])
        ax.plot([r["nfe_per_image"] for r in members], [r["accuracy"] for r in members], style,
                color=_colour(colour), label=group)
        for r in members:
            ax.annotate(r["name"], (r["nfe_per_image"], r["accuracy"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
    ax.axhline(ratio["reference_accuracy"] - ratio["tolerance"], color="grey", lw=0.8, ls="--",
               label=f"{ratio['reference']} accuracy - {100 * ratio['tolerance']:.1f} pt")
    ax.set_xscale("log")
    ax.set_xlabel("denoiser evaluations (NFE) per image")
    ax.set_ylabel("top-1 accuracy")
    shown = "not reached" if ratio["nfe_ratio"] is None else f"{ratio['nfe_ratio']:.3f} ({ratio['matched_by']})"
    ax.set_title(f"{task}: accuracy vs NFE; nfe_ratio {shown}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(figure, path)


def nfe_vs_classes(path: Path, scaling: Mapping[str, Any]) -> Path:
    """NFE per image vs number of candidate classes (log-log), with each strategy's fitted exponent."""
    figure = _figure(5.5, 3.8)
    ax = figure.add_subplot()
    for i, (name, result) in enumerate(scaling["strategies"].items()):
        k = [p["n_classes"] for p in result["points"]]
        ax.plot(k, [p["nfe_per_image"] for p in result["points"]], "o-", color=_colour(i),
                label=f"{name}: NFE ~ classes^{result['exponent']:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("candidate classes")
    ax.set_ylabel("NFE per image")
    ax.set_title(f"{scaling['task']}: cost vs classes ({scaling['n_images']} images per point)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(figure, path)


def wall_bars(path: Path, walls: Mapping[str, Mapping[str, Any]]) -> Path:
    """Seconds per image, dcbench vs the reference loop, per task (identical schedule and predictions)."""
    figure = _figure(max(4.0, 1.5 + 1.5 * len(walls)), 3.4)
    ax = figure.add_subplot()
    names = list(walls)
    x = np.arange(len(names))
    for offset, key, label, colour in ((-0.2, "reference_seconds_per_image", "reference loop", 3),
                                       (0.2, "dcbench_seconds_per_image", "dcbench", 0)):
        bars = ax.bar(x + offset, [walls[n][key] for n in names], 0.4, label=label, color=_colour(colour))
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.set_xticks(x, [f"{n}\nratio {walls[n]['wall_ratio']:.2f}" for n in names])
    ax.set_ylabel("seconds per image (median)")
    ax.set_title("wall time at an identical schedule", fontsize=9)
    ax.legend(fontsize=7)
    return _save(figure, path)


def effective_robustness(path: Path, id_task: str, panels: Sequence[Mapping[str, Any]]) -> Path:
    """ID vs OOD top-1 on logit axes, one panel per OOD task, in the style of Li et al. (2023), Fig. 6.

    Each panel: ``ood`` (task name), ``fit`` (slope, intercept in logit space), ``baselines`` [(name, id, ood)],
    ``scorers`` [(name, id, ood, low, high, colour index)]: baselines as grey dots and their fitted line,
    scorers as coloured points with their Clopper-Pearson intervals; the dashed diagonal is ID = OOD.
    """
    from matplotlib.ticker import NullFormatter

    from dcbench.robustness import EPS, logit, sigmoid

    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    figure = _figure(4.0 * cols, 3.6 * rows + 0.4)
    axes = np.atleast_1d(figure.subplots(rows, cols, squeeze=False)).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        points = [*((b[1], b[2]) for b in panel["baselines"]), *((s[1], s[2], s[3], s[4]) for s in panel["scorers"])]
        values = [v for p in points for v in p]
        lo = sigmoid(logit(max(min(values), 0.01)) - 0.4)
        hi = sigmoid(logit(min(max(values), 1 - EPS * 10)) + 0.4)
        span = np.array([lo, hi])
        ax.set_xscale("logit")
        ax.set_yscale("logit")
        ax.plot(span, span, ls="--", color="0.6", lw=0.8, label="ID = OOD")
        xs = np.linspace(logit(lo), logit(hi), 100)
        fit = panel["fit"]
        ax.plot([sigmoid(x) for x in xs], [sigmoid(fit["slope"] * x + fit["intercept"]) for x in xs],
                color="tab:red", lw=1.2, label=f"fit to baselines (n={fit['n']})")
        ax.scatter([b[1] for b in panel["baselines"]], [b[2] for b in panel["baselines"]], s=14, color="0.45",
                   zorder=3, label="discriminative baselines")
        for name, id_acc, ood, low, high, colour in panel["scorers"]:
            ax.errorbar([id_acc], [ood], yerr=[[ood - low], [high - ood]], fmt="o", ms=5, capsize=3,
                        color=_colour(colour), zorder=4, label=name)
        ticks = [t for t in LOGIT_TICKS if lo <= t <= hi]
        for axis, setter in ((ax.xaxis, ax.set_xticks), (ax.yaxis, ax.set_yticks)):
            setter(ticks, [f"{100 * t:g}" for t in ticks])
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_title(f"{panel['ood']}", fontsize=9)
        ax.set_xlabel(f"{id_task} top-1 % (ID)", fontsize=8)
        ax.set_ylabel(f"{panel['ood']} top-1 % (OOD)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6, loc="upper left")
    figure.suptitle("Effective robustness: OOD accuracy above the baselines' line (intervals: Clopper-Pearson)",
                    fontsize=10)
    return _save(figure, path)


def image_grid(path: Path, title: str, columns: Sequence[tuple[str, Sequence[Any]]]) -> Path:
    """Images side by side: one column per (name, PIL images), one row per image index."""
    n_rows = max(len(images) for _, images in columns)
    figure = _figure(1.3 * len(columns), 1.3 * n_rows + 0.5)
    axes = figure.subplots(n_rows, len(columns), squeeze=False)
    for col, (name, images) in enumerate(columns):
        axes[0, col].set_title(name, fontsize=7)
        for row in range(n_rows):
            ax = axes[row, col]
            ax.set_axis_off()
            if row < len(images):
                image = images[row]
                ax.imshow(np.asarray(image), cmap="gray" if image.mode == "L" else None, vmin=0, vmax=255)
    figure.suptitle(title, fontsize=9)
    return _save(figure, path)
