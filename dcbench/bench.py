"""``dcbench bench``: what the Diffusion Classifier costs, measured side by side.

Three measurements, each written to ``DIR/bench.json`` and plotted in ``DIR/figures``:

* accuracy vs denoiser evaluations (NFE) per image, per task, for every strategy of the config:
  exhaustive evenly spaced timesteps, the reference staged schedules, sequential paired testing;
  ``nfe_ratio``: the fewest NFE per image at which a dcbench strategy reaches the reference
  schedule's accuracy (within ``tolerance``), over the reference schedule's NFE per image;
* NFE per image vs the number of candidate classes, with the fitted exponent of NFE ~ classes^b;
* wall time per image at an identical schedule for dcbench's batched loop and the reference loop
  (``dcbench.reference``: one image at a time, batches of 32), in one process, alternating, medians;
  ``wall_ratio`` = dcbench / reference, with a check that both predict the same classes.

Every strategy's result is saved as soon as it is done (``DIR/strategies``): a rerun reuses them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dcbench.config import ConfigError

__all__ = ["Task", "class_scaling", "load_task", "nfe_ratio", "run_bench", "run_strategy", "wall_time"]


@dataclass
class Task:
    """A labelled image set and the backbone that scores it."""

    name: str
    backbone: Any
    labels: Any  # LabelSet
    images: Tensor
    targets: Tensor
    ids: list[str]


def load_task(name: str, spec: Mapping[str, Any], n_images: int | None = None) -> Task:
    """Build the backbone and load the first ``n_images`` of the task's data (dcbench's transform)."""
    from dcbench.data.datamodule import ClassificationDataModule
    from dcbench.registry import BACKBONES

    backbone = BACKBONES.build(spec["backbone"]).eval()
    data = {k: v for k, v in spec["data"].items() if k != "batch_size"}
    dm = ClassificationDataModule(**data, image_size=backbone.image_size, image_channels=backbone.image_channels,
                                  limit=n_images, batch_size=256)
    dm.setup("predict")
    batches = list(dm.predict_dataloader())
    return Task(name, backbone, dm.labels, torch.cat([b["image"] for b in batches]),
                torch.cat([torch.as_tensor(b["label"]) for b in batches]), [i for b in batches for i in b["id"]])


def subset(task: Task, n_classes: int, n_images: int, seed: int) -> Task:
    """The task restricted to ``n_classes`` candidate classes (drawn by seed) and their first images."""
    if n_classes > task.labels.num_classes:
        raise ConfigError(f"{task.name} has {task.labels.num_classes} classes; cannot take {n_classes}")
    g = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(task.labels.num_classes, generator=g)[:n_classes].sort().values
    remap = torch.full((task.labels.num_classes,), -1, dtype=torch.long)
    remap[chosen] = torch.arange(n_classes)
    keep = (remap[task.targets] >= 0).nonzero().squeeze(1)[:n_images]
    return Task(f"{task.name}[{n_classes}]", task.backbone, task.labels.subset(chosen.tolist()),
                task.images[keep], remap[task.targets[keep]], [task.ids[i] for i in keep.tolist()])


def _scorer(task: Task, pruning: Mapping[str, Any], seed: int, batch_size: int, sampler: Any = "even") -> Any:
    from dcbench.registry import PRUNING, SAMPLERS
    from dcbench.scorers.diffusion_classifier import DiffusionClassifier

    scorer = DiffusionClassifier(task.backbone, SAMPLERS.build(sampler), PRUNING.build(dict(pruning)),
                                 batch_size=batch_size, seed=seed)
    scorer.prepare(task.labels)
    return scorer


def _score(scorer: Any, task: Task, chunk: int, desc: str) -> tuple[list[dict[str, Any]], float]:
    from tqdm.auto import tqdm

    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    with tqdm(total=len(task.ids), desc=desc, unit="img", leave=False) as bar:
        for s in range(0, len(task.ids), chunk):
            records += scorer.score(task.images[s : s + chunk], task.ids[s : s + chunk])
            bar.update(len(task.ids[s : s + chunk]))
    return records, time.perf_counter() - start


def run_strategy(task: Task, name: str, strategy: Mapping[str, Any], seed: int, batch_size: int,
                 chunk: int = 50) -> dict[str, Any]:
    """Score the task's images with one strategy: accuracy, NFE and seconds per image."""
    scorer = _scorer(task, strategy["pruning"], seed, batch_size, strategy.get("sampler", "even"))
    records, seconds = _score(scorer, task, chunk, f"{task.name} {name}")
    predictions = torch.tensor([r["prediction"] for r in records])
    return {"name": name, "group": strategy.get("group", "other"), "pruning": dict(strategy["pruning"]),
            "n_images": len(records), "accuracy": (predictions == task.targets).float().mean().item(),
            "nfe_per_image": sum(r["nfe"] for r in records) / len(records),
            "seconds_per_image": seconds / len(records)}


def nfe_ratio(rows: Sequence[Mapping[str, Any]], reference: str, tolerance: float = 0.005) -> dict[str, Any]:
    """dcbench's fewest NFE per image at the reference schedule's accuracy (minus ``tolerance``), over the
    reference's NFE per image. ``None`` when no dcbench strategy gets there (then ``best`` says how close)."""
    by_name = {r["name"]: r for r in rows}
    if reference not in by_name:
        raise ConfigError(f"reference strategy {reference!r} is not among {sorted(by_name)}")
    ref = by_name[reference]
    ours = [r for r in rows if r["group"] != "reference"]
    reaching = [r for r in ours if r["accuracy"] >= ref["accuracy"] - tolerance]
    best = max(ours, key=lambda r: (r["accuracy"], -r["nfe_per_image"]), default=None)
    match = min(reaching, key=lambda r: r["nfe_per_image"], default=None)
    return {"reference": reference, "reference_accuracy": ref["accuracy"], "reference_nfe": ref["nfe_per_image"],
            "tolerance": tolerance, "matched_by": match["name"] if match else None,
            "nfe_ratio": match["nfe_per_image"] / ref["nfe_per_image"] if match else None,
            "best": {k: best[k] for k in ("name", "accuracy", "nfe_per_image")} if best else None}


def class_scaling(task: Task, counts: Sequence[int], strategies: Mapping[str, Mapping[str, Any]], n_images: int,
                  seed: int, batch_size: int) -> dict[str, Any]:
    """NFE per image vs the number of candidate classes, per strategy, and the fitted exponent b of
    NFE ~ a * classes^b (least squares in log-log): b = 1 is linear growth, b < 1 sub-linear."""
    out: dict[str, Any] = {"task": task.name, "counts": list(counts), "n_images": n_images, "strategies": {}}
    for name, strategy in strategies.items():
        points = []
        for k in counts:
            row = run_strategy(subset(task, k, n_images, seed), name, strategy, seed, batch_size)
            points.append({"n_classes": k, **{key: row[key] for key in ("accuracy", "nfe_per_image", "n_images")}})
        exponent = float(np.polyfit(np.log(counts), np.log([p["nfe_per_image"] for p in points]), 1)[0])
        out["strategies"][name] = {"points": points, "exponent": exponent}
    return out


def wall_time(task: Task, n_samples: Sequence[int], to_keep: Sequence[int], seed: int, batch_size: int,
              repeats: int = 3, chunk: int = 50) -> dict[str, Any]:
    """Seconds per image, dcbench vs the reference loop, at one staged schedule with the same timesteps and
    noise per image (so the same predictions); alternating runs, medians."""
    from dcbench.reference import reference_eval_prob_adaptive

    pruning = {"name": "staged", "n_samples": list(n_samples), "to_keep": list(to_keep)}
    scorer = _scorer(task, pruning, seed, batch_size)
    backbone, process = task.backbone, task.backbone.process

    def eps(x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return process.to_epsilon(backbone(x_t, t, cond), x_t, t)

    def reference(n_images: int | None = None) -> tuple[list[int], float]:
        # The model as the reference code runs it: default memory format (dcbench's scorer converts it to
        # channels-last when it scores, so undo that outside the timed region).
        backbone.to(memory_format=torch.contiguous_format)
        start = time.perf_counter()
        with torch.inference_mode():
            predictions = []
            for image, image_id in list(zip(task.images, task.ids, strict=True))[:n_images]:
                latent = backbone.encode_images(image[None]).float()
                noise = scorer.plan(image_id, latent.shape[1:]).noise  # the same noise dcbench draws
                prompt, _ = reference_eval_prob_adaptive(eps, latent, scorer.cond, process.alphas_cumprod,
                                                         n_samples, to_keep, noise)
                predictions.append(task.labels.prompt_class[prompt])
        return predictions, time.perf_counter() - start

    # Untimed warm-up of both loops (first-call kernel selection and allocations are not per-image costs).
    scorer.score(task.images[:1], task.ids[:1])
    reference(1)
    ours_s, ref_s, same = [], [], True
    for _ in range(repeats):
        records, seconds = _score(scorer, task, chunk, f"{task.name} dcbench")
        ours_s.append(seconds / len(task.ids))
        ref_predictions, seconds = reference()
        ref_s.append(seconds / len(task.ids))
        same &= [r["prediction"] for r in records] == ref_predictions
    ours, ref = statistics.median(ours_s), statistics.median(ref_s)
    return {"schedule": pruning, "n_images": len(task.ids), "repeats": repeats, "batch_size": batch_size,
            "reference_batch_size": 32, "dcbench_seconds_per_image": ours, "reference_seconds_per_image": ref,
            "dcbench_runs": ours_s, "reference_runs": ref_s, "wall_ratio": ours / ref,
            "identical_predictions": same}


# ---- the command -------------------------------------------------------------------------------------
def _cached(path: Path, make: Any, *args: Any) -> Any:
    """``make(*args)``, unless done before: each result is a JSON file written as soon as it exists."""
    if path.is_file():
        return json.loads(path.read_text())
    result = make(*args)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(path)
    return result


def load_bench_config(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"bench config {path} not found (e.g. configs/bench/embedded.yaml)")
    config = yaml.safe_load(path.read_text()) or {}
    for key in ("tasks", "strategies"):
        if not config.get(key):
            raise ConfigError(f"{path}: the bench config needs a non-empty `{key}` section")
    for task, spec in config["tasks"].items():
        unknown = [s for s in spec.get("strategies", []) if s not in config["strategies"]]
        if unknown or spec.get("reference") not in spec.get("strategies", []):
            raise ConfigError(f"{path}: task {task!r} lists unknown strategies {unknown} or a `reference` "
                              "that is not among its `strategies`")
    return config


def run_bench(config: Mapping[str, Any], run_dir: str | Path, only_tasks: Sequence[str] | None = None) -> dict:
    """Run (or reuse) every measurement of ``config``; write bench.json and figures; return bench.json."""
    from dcbench.figures import accuracy_vs_nfe, nfe_vs_classes, wall_bars

    root = Path(run_dir)
    seed, batch_size = int(config.get("seed", 0)), int(config.get("batch_size", 500))
    tolerance = float(config.get("tolerance", 0.005))
    out: dict[str, Any] = {"config": dict(config), "seed": seed, "threads": torch.get_num_threads(),
                           "device": "cpu", "tasks": {}}
    for name, spec in config["tasks"].items():
        if only_tasks and name not in only_tasks:
            continue
        task = load_task(name, spec, spec.get("n_images"))
        rows = [_cached(root / "strategies" / name / f"{s}.json", run_strategy, task, s, config["strategies"][s],
                        seed, batch_size) for s in spec["strategies"]]
        entry: dict[str, Any] = {"n_images": len(task.ids), "n_classes": task.labels.num_classes,
                                 "strategies": rows, **nfe_ratio(rows, spec["reference"], tolerance)}
        if "wall" in spec:
            w = spec["wall"]
            wall_task = subset(task, task.labels.num_classes, int(w["n_images"]), seed)
            entry["wall"] = _cached(root / "wall" / f"{name}.json", wall_time, wall_task, w["n_samples"],
                                    w["to_keep"], seed, batch_size, int(w.get("repeats", 3)))
            entry["wall_ratio"] = entry["wall"]["wall_ratio"]
        out["tasks"][name] = entry
        accuracy_vs_nfe(root / "figures" / f"{name}_accuracy_vs_nfe.png", name, rows, entry)
    if "classes" in config and not (only_tasks and config["classes"]["task"] not in only_tasks):
        c = config["classes"]
        base = load_task(c["task"], config["tasks"][c["task"]] if c["task"] in config["tasks"] else c["spec"])
        strategies = {s: config["strategies"][s] for s in c["strategies"]}
        out["classes"] = _cached(root / "classes.json", class_scaling, base, c["counts"], strategies,
                                 int(c["n_images"]), seed, batch_size)
        nfe_vs_classes(root / "figures" / "nfe_vs_classes.png", out["classes"])
    walls = {n: e["wall"] for n, e in out["tasks"].items() if "wall" in e}
    if walls:
        wall_bars(root / "figures" / "wall_time.png", walls)
    out["targets"] = _targets(out)
    (root / "bench.json").write_text(json.dumps(out, indent=1))
    return out


def _targets(out: Mapping[str, Any]) -> dict[str, Any]:
    """The issue's targets, checked against the measurements (None: not measured in this run)."""
    tasks = out["tasks"].values()
    ratios = [t["nfe_ratio"] for t in tasks]
    walls = [t["wall_ratio"] for t in tasks if "wall_ratio" in t]
    exponents = [s["exponent"] for name, s in out.get("classes", {}).get("strategies", {}).items()
                 if out["config"]["strategies"][name].get("group") == "sequential"]
    return {
        "nfe_ratio_at_most_0.1": (all(r is not None and r <= 0.1 for r in ratios) if ratios else None),
        "wall_ratio_at_most_0.67": (all(w <= 0.67 for w in walls) if walls else None),
        # "clearly sub-linear": cost grows at most like classes^0.8 (exponent 1 is every class at every sample)
        "sequential_exponent_at_most_0.8": (all(e <= 0.8 for e in exponents) if exponents else None),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="e.g. configs/bench/embedded.yaml")
    parser.add_argument("--run-dir", required=True, help="bench.json, figures/ and finished parts go here")
    parser.add_argument("--only-tasks", help="comma-separated task names of the config")


def cmd_bench(args: argparse.Namespace) -> int:
    config = load_bench_config(args.config)
    only = [t for t in args.only_tasks.split(",") if t] if args.only_tasks else None
    out = run_bench(config, args.run_dir, only)
    for name, task in out["tasks"].items():
        ratio = task["nfe_ratio"]
        line = f"nfe_ratio {ratio:.3f} ({task['matched_by']})" if ratio is not None else "nfe_ratio: not reached"
        wall = f", wall_ratio {task['wall_ratio']:.2f}" if "wall_ratio" in task else ""
        print(f"dcbench bench: {name}: {line}{wall}")
    for name, s in out.get("classes", {}).get("strategies", {}).items():
        print(f"dcbench bench: NFE ~ classes^{s['exponent']:.2f} ({name})")
    print(f"dcbench bench: {Path(args.run_dir) / 'bench.json'}")
    return 0
