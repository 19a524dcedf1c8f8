"""``dcbench report``: every scorer of a report config on every task, in one table.

A report config is data, like a predict config, with a mapping of scorers and a mapping of tasks::

    seed: 0
    scorers:            # row name -> a scorer spec, as `scorer:` in a predict config (rows in this order)
      clip: {name: clip, model: embedded:shapes-world/clip}
    tasks:              # column group -> {task: classification | matching, data: as `data:` in a predict config}
      zero-shot: {task: classification, data: {dataset: {name: shapes-world, split: test}}}
      winoground: {task: matching, data: {dataset: {name: shapes-world-pairs}}}
    trainer: {accelerator: auto, devices: 1}   # shared by every run
    logger: wandb       # none | csv | wandb; with wandb one W&B run per (task, scorer)

For each (task, scorer), the report runs :func:`dcbench.cli.run_predict` on the predict config
``{seed, task, scorer, data, trainer, logger}`` into ``DIR/runs/<task>/<scorer>``: a finished run is
reused and a partial one resumed (a changed config for the same directory is a failure that says so).
Every number in ``DIR/report.md``, ``DIR/report.json`` and ``DIR/figures/*.png`` is then read from the
runs' ``metrics.json`` and ``records.jsonl``. A scorer that cannot score image-text pairs is "n/a" on
matching tasks; a run that fails is recorded with its error and the others go on.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import re
import shlex
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dcbench.config import ConfigError, load_config, merge, parse_overrides

__all__ = ["REPORT_SECTIONS", "Cell", "ReportError", "add_arguments", "build_report", "cmd_report",
           "load_report_config", "make_report", "matching_support", "predict_config", "run_cell", "select"]

REPORT_SECTIONS = ("seed", "scorers", "tasks", "trainer", "logger", "robustness")
#: above this many tasks the main table shows top-1 per task only (the other metrics stay in report.json)
WIDE_TASKS = 2
EXAMPLE_IMAGES = 4  # rows of the ID/OOD examples figure
#: below this R^2 (logit space) the baselines' ID/OOD fit is reported as no trend
TREND_R2 = 0.5
TASK_KINDS = ("classification", "matching")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # row and task names become directory and file names
#: the scorer name whose rows get a confusion matrix
CONFUSION_SCORER = "diffusion-classifier"


class ReportError(RuntimeError):
    """A run directory that cannot be read into the report (not run yet, another config, not that task)."""


# ---- the config ------------------------------------------------------------------------------------------
def _spec_name(spec: Any) -> str:
    return spec if isinstance(spec, str) else spec["name"]


def load_report_config(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Read and check a report config; ``--section.key value`` overrides apply as for ``predict``."""
    config = merge(load_config(path), parse_overrides(overrides))
    unknown = sorted(set(config) - set(REPORT_SECTIONS))
    if unknown:
        raise ConfigError(f"unknown report config section(s) {', '.join(unknown)}; sections are "
                          f"{', '.join(REPORT_SECTIONS)}")
    for section in ("scorers", "tasks"):
        if not isinstance(config.get(section), dict) or not config[section]:
            raise ConfigError(f"a report config needs a non-empty `{section}` mapping (see docs/report.md)")
    for row, spec in config["scorers"].items():
        if not _NAME.match(str(row)):
            raise ConfigError(f"scorer row name {row!r}: use letters, digits, '.', '_' and '-' (it names a directory)")
        if not (isinstance(spec, str) or (isinstance(spec, dict) and "name" in spec)):
            raise ConfigError(f"scorers.{row} must be a scorer name or a mapping with a `name`, got {spec!r}")
    for name, task in config["tasks"].items():
        if not _NAME.match(str(name)):
            raise ConfigError(f"task name {name!r}: use letters, digits, '.', '_' and '-' (it names a directory)")
        if not isinstance(task, dict) or task.get("task") not in TASK_KINDS:
            raise ConfigError(f"tasks.{name} needs `task: classification` or `task: matching`")
        extra = sorted(set(task) - {"task", "data"})
        if extra:
            raise ConfigError(f"tasks.{name} has unknown key(s) {', '.join(extra)}; a task has `task` and `data`")
        if not isinstance(task.get("data"), dict) or "dataset" not in task["data"]:
            raise ConfigError(f"tasks.{name} needs data.dataset (e.g. {{name: shapes-world}})")
    if config.get("robustness") is not None:
        _check_robustness(config)
    config.setdefault("seed", 0)
    config["trainer"] = config.get("trainer") or {}
    config.setdefault("logger", "none")
    return config


def _check_robustness(config: Mapping[str, Any]) -> None:
    """``robustness: {id: TASK, ood: [TASK, ...], baselines: [ROW, ...], confidence: 0.995}``."""
    section = config["robustness"]
    if not isinstance(section, dict) or not {"id", "ood", "baselines"} <= set(section):
        raise ConfigError("robustness needs id (the in-distribution task), ood (a list of tasks) and baselines "
                          "(the scorer rows whose ID/OOD accuracies define the line)")
    extra = sorted(set(section) - {"id", "ood", "baselines", "confidence"})
    if extra:
        raise ConfigError(f"robustness has unknown key(s) {', '.join(extra)}; it takes id, ood, baselines, confidence")
    for task in [section["id"], *section["ood"]]:
        if config["tasks"].get(task, {}).get("task") != "classification":
            raise ConfigError(f"robustness task {task!r} is not a classification task of this report config")
    missing = [row for row in section["baselines"] if row not in config["scorers"]]
    if missing or len(section["baselines"]) < 2:
        raise ConfigError(f"robustness.baselines must name at least 2 scorer rows of the config (unknown: {missing})")


def _pick(what: str, available: Mapping[str, Any], wanted: Sequence[str] | None) -> dict[str, Any]:
    if not wanted:
        return dict(available)
    missing = [w for w in wanted if w not in available]
    if missing:
        raise ConfigError(f"no {what} named {', '.join(missing)} in the report config; it has "
                          f"{', '.join(available)}")
    return {k: v for k, v in available.items() if k in wanted}  # config order, not the option's


def select(config: dict[str, Any], scorers: Sequence[str] | None = None,
           tasks: Sequence[str] | None = None) -> dict[str, Any]:
    """The config restricted to some rows and some tasks (``--only-scorers`` / ``--only-tasks``).

    The robustness section is dropped when the selection leaves out its ID task or its baselines.
    """
    out = {**config, "scorers": _pick("scorer", config["scorers"], scorers),
           "tasks": _pick("task", config["tasks"], tasks)}
    section = out.get("robustness")
    if section:
        ood = [t for t in section["ood"] if t in out["tasks"]]
        baselines = [b for b in section["baselines"] if b in out["scorers"]]
        keep = section["id"] in out["tasks"] and ood and len(baselines) >= 2
        out["robustness"] = {**section, "ood": ood, "baselines": baselines} if keep else None
    return out


def _logger(spec: Any, run_name: str, group: str) -> Any:
    """The report's logger spec for one run: a W&B run is named ``<task>/<scorer>`` in group ``group``."""
    options = {"name": spec} if isinstance(spec, str) else copy.deepcopy(spec)
    if not isinstance(options, dict) or options.get("name") != "wandb":
        return copy.deepcopy(spec)
    options.setdefault("run_name", run_name)
    options.setdefault("group", group)
    return options


def predict_config(config: Mapping[str, Any], task: str, scorer: str, group: str,
                   limit: int | None = None) -> dict[str, Any]:
    """The ``run_predict`` config of one cell of the report."""
    data = copy.deepcopy(config["tasks"][task]["data"])
    if limit is not None:
        data["limit"] = limit
    return {"seed": config["seed"], "task": config["tasks"][task]["task"],
            "scorer": copy.deepcopy(config["scorers"][scorer]), "data": data,
            "trainer": copy.deepcopy(config["trainer"]), "logger": _logger(config["logger"], f"{task}/{scorer}", group)}


def matching_support(spec: Any) -> str | None:
    """None if the scorer can score image-text pairs (or it cannot be told before building it), else why not.

    Decided from the class the scorer's factory returns (its return annotation), without loading a model.
    """
    import typing

    from dcbench.registry import SCORERS

    name = _spec_name(spec)
    factory = SCORERS.get(name)  # an unknown scorer is an error, reported as the cell's failure
    cls: Any = factory
    if not isinstance(factory, type):
        try:
            cls = typing.get_type_hints(factory).get("return")
        except Exception:  # an annotation that cannot be evaluated: leave it to the run
            return None
    if not isinstance(cls, type):
        return None
    if callable(getattr(cls, "text_image_scores", None)):
        return None
    return f"scorer {name!r} cannot score image-text pairs ({cls.__name__} has no text_image_scores)"


# ---- running ---------------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One (task, scorer) of the report: ``ok`` with its metrics, ``n/a`` with a reason, or ``failed``."""

    task: str
    scorer: str
    kind: str
    run_dir: Path
    status: str = "ok"
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str | None = None


def _finish_wandb() -> None:
    """End the W&B run of the last ``run_predict``: Lightning's WandbLogger would otherwise reuse it."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def _check_existing(config: dict[str, Any], run_dir: Path) -> None:
    """``--no-run``: the directory must hold a finished run of this very config."""
    from dcbench.config import result_identity

    if not (run_dir / "metrics.json").is_file():
        raise ReportError(f"not run yet: {run_dir} has no metrics.json (run the report without --no-run)")
    old = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    same = result_identity(old) == result_identity(config)
    if not same or old.get("data", {}).get("limit") != config["data"].get("limit"):
        raise ReportError(f"{run_dir} holds a run of another config (see its config.yaml); rerun the report "
                          "without --no-run, or use another --run-dir")


def _read_metrics(run_dir: Path, kind: str) -> dict[str, Any]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    key = "top1" if kind == "classification" else "text_score"
    if key not in metrics:
        raise ReportError(f"{run_dir}/metrics.json has no {key!r}: it is not the result of a {kind} run")
    return metrics


def run_cell(config: Mapping[str, Any], task: str, scorer: str, root: Path, run: bool = True,
             overwrite: bool = False, limit: int | None = None) -> Cell:
    """Run (or reuse) one (task, scorer) and read its metrics; any error becomes a failed cell."""
    from dcbench import cli

    kind = config["tasks"][task]["task"]
    cell = Cell(task, scorer, kind, root / "runs" / task / scorer)
    try:
        if kind == "matching":
            reason = matching_support(config["scorers"][scorer])
            if reason:
                cell.status, cell.message = "n/a", reason
                return cell
        pconfig = predict_config(config, task, scorer, root.resolve().name, limit)
        if run:
            try:
                cli.run_predict(pconfig, cell.run_dir, overwrite=overwrite)
            finally:
                _finish_wandb()
        else:
            _check_existing(pconfig, cell.run_dir)
        cell.metrics = _read_metrics(cell.run_dir, kind)
    except Exception as err:  # one failed run must not lose the others
        cell.status, cell.message = "failed", f"{type(err).__name__}: {err}"
        if not isinstance(err, (ReportError, FileNotFoundError, *cli._user_errors())):  # else: a bug, show where
            traceback.print_exc(file=sys.stderr)
        print(f"dcbench report: {task}/{scorer} failed: {cell.message}", file=sys.stderr)
    return cell


# ---- the report ------------------------------------------------------------------------------------------
def _pct(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) or math.isnan(value) else f"{100 * value:.1f}"


def _num(value: Any, digits: int = 3) -> str:
    if not isinstance(value, (int, float)) or math.isnan(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.{digits}g}"


def _ece(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) or math.isnan(value) else f"{value:.3f}"


#: (metric key, column title, format) of the main table, per task kind
COLUMNS: dict[str, list[tuple[str, str, Any]]] = {
    "classification": [("top1", "top-1 %", _pct), ("mean_per_class", "mean/class %", _pct),
                       ("top1_held_out", "held-out top-1 %", _pct), ("ece", "ECE", _ece),
                       ("nfe_per_image", "NFE/img", _num), ("seconds_per_image", "s/img", _num)],
    "matching": [("text_score", "text %", _pct), ("image_score", "image %", _pct), ("group_score", "group %", _pct),
                 ("nfe_per_pair", "NFE/pair", _num), ("seconds_per_pair", "s/pair", _num)],
}


def _cell_text(cell: Cell, key: str, fmt: Any) -> str:
    if cell.status == "n/a":
        return "n/a"
    if cell.status == "failed":
        return "failed"
    return fmt(cell.metrics.get(key))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _tags(cells: Sequence[Cell]) -> list[str]:
    tags: list[str] = []
    for cell in cells:
        for tag in cell.metrics.get("by_tag", {}):
            if tag not in tags:
                tags.append(tag)
    return tags


def _sizes(cells: Sequence[Cell]) -> dict[str, int]:
    key = "n_images" if cells and cells[0].kind == "classification" else "n_pairs"
    return {c.scorer: c.metrics[key] for c in cells if c.status == "ok" and key in c.metrics}


def _size_text(kind: str, sizes: Mapping[str, int]) -> str:
    unit = "images" if kind == "classification" else "pairs"
    values = sorted(set(sizes.values()))
    if not values:
        return f"no {unit} scored"
    if len(values) == 1:
        return f"{values[0]} {unit}"
    return ", ".join(f"{s}: {n}" for s, n in sizes.items()) + f" {unit} (differs by scorer)"


def _reliability(path: Path, task: str, cells: Sequence[Cell], records: Mapping[str, list[dict[str, Any]]]) -> None:
    import numpy as np

    from dcbench import figures

    panels = [(c.scorer, np.array([r["probs"] for r in records[c.scorer]]),
               np.array([r["label"] for r in records[c.scorer]]), c.metrics.get("ece"))
              for c in cells if records[c.scorer]]
    figures.reliability_diagram(path, f"{task}: reliability ({figures.RELIABILITY_BINS} bins)", panels)


def _confusion(path: Path, cell: Cell, records: list[dict[str, Any]]) -> None:
    from dcbench import figures

    classes = cell.metrics.get("classes")
    if not classes:
        raise ReportError(f"{cell.run_dir}/metrics.json has no class names")
    matrix = figures.confusion_matrix([r["label"] for r in records], [r["prediction"] for r in records], len(classes))
    figures.confusion_figure(path, f"{cell.task} / {cell.scorer}: confusion matrix (rows normalised)", matrix,
                             classes)


def _robustness(config: Mapping[str, Any], cells: dict[tuple[str, str], Cell]) -> dict[str, Any] | None:
    """The effective-robustness section from the finished classification cells (None: not configured)."""
    from dcbench.robustness import robustness_section

    section = config.get("robustness")
    if not section:
        return None
    top1: dict[str, dict[str, tuple[float, int]]] = {}
    for (task, scorer), cell in cells.items():
        if cell.status == "ok" and cell.kind == "classification":
            top1.setdefault(task, {})[scorer] = (float(cell.metrics["top1"]), int(cell.metrics["n_images"]))
    return robustness_section(top1, section["id"], section["ood"], section["baselines"],
                              float(section.get("confidence", 0.995)))


def _robustness_figure(path: Path, config: Mapping[str, Any], robustness: Mapping[str, Any]) -> None:
    from dcbench import figures

    scorers, baselines = list(config["scorers"]), robustness["baselines"]
    panels = []
    for task, entry in robustness["ood"].items():
        if "fit" not in entry:
            continue
        rows = entry["rows"]
        panels.append({
            "ood": task, "fit": entry["fit"],
            "baselines": [(b, rows[b]["id_accuracy"], rows[b]["ood_accuracy"]) for b in baselines if b in rows],
            "scorers": [(s, r["id_accuracy"], r["ood_accuracy"], r["ood_low"], r["ood_high"], scorers.index(s))
                        for s, r in rows.items() if s not in baselines]})
    if not panels:
        raise ReportError("no OOD task has a fitted line (see report.json robustness)")
    figures.effective_robustness(path, robustness["id_task"], panels)


def _examples(path: Path, config: Mapping[str, Any], robustness: Mapping[str, Any]) -> None:
    """The first images of the ID test set and of every OOD one: what the shifts look like."""
    from dcbench import figures
    from dcbench.registry import DATASETS

    columns = []
    for task in [robustness["id_task"], *robustness["ood"]]:
        dataset = DATASETS.build(config["tasks"][task]["data"]["dataset"])
        columns.append((task, [dataset.load(i)[0] for i in range(min(EXAMPLE_IMAGES, len(dataset)))]))
    figures.image_grid(path, "test images: in distribution (first column) and shifted", columns)


def _figures(config: Mapping[str, Any], cells: dict[tuple[str, str], Cell], root: Path,
             failures: list[dict[str, Any]], robustness: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
    """Draw every figure; one that fails is recorded and the others are still drawn."""
    from functools import partial

    from dcbench import figures
    from dcbench.writers import RunDirectory

    out: list[dict[str, str]] = []
    scorers = list(config["scorers"])

    def draw(name: str, title: str, make: Any) -> None:
        path = root / "figures" / f"{name}.png"
        try:
            make(path)
            out.append({"path": path.relative_to(root).as_posix(), "title": title})
        except Exception as err:
            traceback.print_exc(file=sys.stderr)
            failures.append({"figure": name, "error": f"{type(err).__name__}: {err}"})

    tasks = list(config["tasks"].items())
    # a wide report (a study over many shifted test sets) draws its per-task figures for the first task only
    for task, spec in tasks[:1] if len(tasks) > WIDE_TASKS else tasks:
        ok = [cells[task, s] for s in scorers if cells[task, s].status == "ok"]
        if not ok:
            continue
        bars = [(c.scorer, c.metrics, scorers.index(c.scorer)) for c in ok]  # colour = row index, in every figure
        if spec["task"] == "matching":
            draw(f"{task}_scores", f"{task}: text / image / group score by swap type",
                 partial(figures.matching_bars, title=task, rows=bars, tags=_tags(ok)))
            continue
        draw(f"{task}_accuracy", f"{task}: accuracy", partial(figures.classification_bars, title=task, rows=bars))
        records = {c.scorer: list(RunDirectory(c.run_dir).records().values()) for c in ok}
        draw(f"{task}_reliability", f"{task}: reliability diagrams",
             partial(_reliability, task=task, cells=ok, records=records))
        for cell in ok:
            if _spec_name(config["scorers"][cell.scorer]) == CONFUSION_SCORER and records[cell.scorer]:
                draw(f"{task}_confusion_{cell.scorer}", f"{task}: confusion matrix of {cell.scorer}",
                     partial(_confusion, cell=cell, records=records[cell.scorer]))
    if robustness is not None:
        draw("effective_robustness", f"effective robustness against {robustness['id_task']}",
             partial(_robustness_figure, config=config, robustness=robustness))
        draw("examples", "the first test images of the ID and OOD tasks",
             partial(_examples, config=config, robustness=robustness))
    return out


def build_report(config: Mapping[str, Any], cells: dict[tuple[str, str], Cell], root: Path, *,
                 config_path: str, command: str) -> dict[str, Any]:
    """Write ``report.json``, ``report.md`` and the figures from the cells' metrics and records; return the JSON."""
    from dcbench import __version__

    failures: list[dict[str, Any]] = [
        {"task": c.task, "scorer": c.scorer, "run_dir": c.run_dir.relative_to(root).as_posix(), "error": c.message}
        for c in cells.values() if c.status == "failed"]
    robustness = _robustness(config, cells)
    figure_list = _figures(config, cells, root, failures, robustness)
    scorers, tasks = list(config["scorers"]), config["tasks"]
    task_info = {}
    for task, spec in tasks.items():
        column = [cells[task, s] for s in scorers]
        info: dict[str, Any] = {"task": spec["task"], "data": spec["data"], "n": _sizes(column)}
        ok = [c for c in column if c.status == "ok"]
        if spec["task"] == "classification" and ok:
            info["classes"] = ok[0].metrics.get("classes")
        if spec["task"] == "matching":
            info["tags"] = _tags(column)
        task_info[task] = info
    rows = []
    for scorer in scorers:
        row: dict[str, Any] = {"scorer": scorer, "spec": config["scorers"][scorer]}
        for task in tasks:
            cell = cells[task, scorer]
            entry: dict[str, Any] = {"status": cell.status, "run_dir": cell.run_dir.relative_to(root).as_posix()}
            if cell.status == "ok":
                entry.update(cell.metrics)
            else:
                entry["reason" if cell.status == "n/a" else "error"] = cell.message
            row[task] = entry
        rows.append(row)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = {"dcbench_version": __version__, "date": now, "config_path": config_path, "command": command,
              "config": config, "tasks": task_info, "rows": rows, "failures": failures, "figures": figure_list}
    if robustness is not None:
        report["robustness"] = robustness
    root.mkdir(parents=True, exist_ok=True)
    (root / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (root / "report.md").write_text(_markdown(report, config, cells))
    return report


def _markdown(report: Mapping[str, Any], config: Mapping[str, Any], cells: dict[tuple[str, str], Cell]) -> str:
    from dcbench.figures import RELIABILITY_BINS

    scorers, tasks = list(config["scorers"]), config["tasks"]
    lines = ["# dcbench report", "",
             f"- config: `{report['config_path']}`",
             f"- generated {report['date']} by dcbench {report['dcbench_version']}; seed {config['seed']}"]
    for task, info in report["tasks"].items():
        dataset = info["data"]["dataset"]
        lines.append(f"- {task}: {info['task']} on `{_spec_name(dataset)}`, {_size_text(info['task'], info['n'])}")
    lines += ["- every number below is read from the runs in `runs/<task>/<scorer>/` (metrics.json, records.jsonl)",
              "", "## Results", ""]
    if len(tasks) > WIDE_TASKS:  # one column per task: top-1 (or text score), then the first task's cost
        first = next(iter(tasks))
        main = {"classification": "top1", "matching": "text_score"}
        header = ["scorer", *(f"{t} top-1 %" if spec["task"] == "classification" else f"{t} text %"
                              for t, spec in tasks.items()), f"{first} NFE/img", f"{first} ECE"]
        body = [[s, *(_cell_text(cells[t, s], main[spec["task"]], _pct) for t, spec in tasks.items()),
                 _cell_text(cells[first, s], "nfe_per_image", _num), _cell_text(cells[first, s], "ece", _ece)]
                for s in scorers]
        lines += _table(header, body)
        lines += ["", "Every other metric of every run (ECE, mean per class, seconds) is in report.json."]
    else:
        header = ["scorer"]
        for task, spec in tasks.items():
            header += [f"{task} {title}" for _, title, _ in COLUMNS[spec["task"]]]
        body = [[s] + [_cell_text(cells[t, s], key, fmt) for t, spec in tasks.items()
                       for key, _, fmt in COLUMNS[spec["task"]]] for s in scorers]
        lines += _table(header, body)
    notes = [f"- {c.task} / {c.scorer}: n/a, {c.message}" for c in cells.values() if c.status == "n/a"]
    notes += [f"- {c.task} / {c.scorer}: failed (see Failures)" for c in cells.values() if c.status == "failed"]
    lines += ["", f"Accuracies and scores in %; ECE over {RELIABILITY_BINS} confidence bins; NFE = denoiser "
              "evaluations; s = seconds of scoring. `-`: not reported by that run.", *(["", *notes] if notes else [])]

    for task, spec in tasks.items():
        if spec["task"] != "matching":
            continue
        column = [cells[task, s] for s in scorers]
        tags = _tags(column)
        first = next((c.metrics for c in column if c.status == "ok"), {})
        lines += ["", f"## {task}: by swap type", ""]
        header = ["scorer"]
        for tag in tags:
            n = first.get("by_tag", {}).get(tag, {}).get("n", "?")
            header += [f"{tag} (n={n}) {k}" for k in ("text", "image", "group")]
        body = []
        for cell in column:
            row = [cell.scorer]
            for tag in tags:
                for key in ("text_score", "image_score", "group_score"):
                    if cell.status != "ok":
                        row.append(cell.status)
                    else:
                        row.append(_pct(cell.metrics.get("by_tag", {}).get(tag, {}).get(key)))
            body.append(row)
        lines += _table(header, body)

    if report.get("robustness"):
        lines += _robustness_markdown(report["robustness"], scorers)

    if report["figures"]:
        lines += ["", "## Figures", ""]
        for fig in report["figures"]:
            lines += [f"### {fig['title']}", "", f"![{fig['title']}]({fig['path']})", ""]
    else:
        lines.append("")
    if report["failures"]:
        lines += ["## Failures", ""]
        for f in report["failures"]:
            where = f"{f['task']} / {f['scorer']} (`{f['run_dir']}`)" if "task" in f else f"figure {f['figure']}"
            lines.append(f"- {where}: {_one_line(f['error'])}")
        lines.append("")
    lines += ["## How to regenerate", "", "```bash", report["command"], "```",
              "", "Finished runs are reused; a rerun only scores what is missing.", ""]
    return "\n".join(lines)


def _robustness_markdown(section: Mapping[str, Any], scorers: Sequence[str]) -> list[str]:
    conf = 100 * section["confidence"]
    lines = ["", f"## Effective robustness (ID: {section['id_task']})", "",
             f"OOD top-1 minus the OOD top-1 that the line through the {len(section['baselines'])} discriminative "
             f"baselines ({', '.join(section['baselines'])}) predicts at the scorer's ID top-1 (a least-squares "
             f"line in logit-logit space); in brackets its {conf:g} % Clopper-Pearson interval (OOD sampling "
             "error only). Positive: more robust than the baselines at that ID accuracy.", ""]
    ood = section["ood"]
    header = ["scorer", *(f"{t} ER (points)" for t in ood)]
    body = []
    for scorer in scorers:
        row = [scorer + (" (baseline)" if scorer in section["baselines"] else "")]
        for entry in ood.values():
            r = entry.get("rows", {}).get(scorer)
            row.append("-" if r is None else f"{100 * r['effective_robustness']:+.1f} "
                       f"[{100 * r['effective_robustness_low']:+.1f}, {100 * r['effective_robustness_high']:+.1f}]")
        body.append(row)
    lines += _table(header, body)
    lines += ["", "| OOD task | slope | intercept | R^2 (logit) | baselines |", "|---|---:|---:|---:|---:|"]
    for task, entry in ood.items():
        if "fit" in entry:
            f = entry["fit"]
            lines.append(f"| {task} | {f['slope']:.3f} | {f['intercept']:.3f} | {f['r2']:.3f} | {f['n']} |")
        else:
            lines.append(f"| {task} | no line: {_one_line(entry['error'])} | | | |")
    flat = [task for task, entry in ood.items() if "fit" in entry and entry["fit"]["r2"] < TREND_R2]
    if flat:
        lines += ["", f"No linear trend among the baselines on {', '.join(flat)} (R^2 < {TREND_R2:g}): there the "
                  "residual measures the distance to the baselines' average OOD accuracy, not to a trend, and is "
                  "not effective robustness in the paper's sense."]
    return lines


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def make_report(config_path: str | Path, run_dir: str | Path, overrides: Sequence[str] = (),
                only_scorers: Sequence[str] | None = None, only_tasks: Sequence[str] | None = None,
                limit: int | None = None, run: bool = True, overwrite: bool = False,
                command: str | None = None) -> dict[str, Any]:
    """Run every (task, scorer) of the report config into ``run_dir`` and write the report there."""
    config = select(load_report_config(config_path, overrides), only_scorers, only_tasks)
    root = Path(run_dir)
    cells: dict[tuple[str, str], Cell] = {}
    todo = [(t, s) for t in config["tasks"] for s in config["scorers"]]
    for i, (task, scorer) in enumerate(todo, 1):
        print(f"dcbench report: [{i}/{len(todo)}] {task} / {scorer}", file=sys.stderr)
        cells[task, scorer] = run_cell(config, task, scorer, root, run=run, overwrite=overwrite, limit=limit)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0:  # the other processes of a multi-device run: rank 0 writes the report
        return {"failures": []}
    if command is None:
        command = _command(str(config_path), str(run_dir), overrides, only_scorers, only_tasks, limit)
    return build_report(config, cells, root, config_path=str(config_path), command=command)


def _command(config_path: str, run_dir: str, overrides: Sequence[str], only_scorers: Sequence[str] | None,
             only_tasks: Sequence[str] | None, limit: int | None) -> str:
    args = ["dcbench", "report", "--config", config_path, "--run-dir", run_dir]
    if only_scorers:
        args += ["--only-scorers", ",".join(only_scorers)]
    if only_tasks:
        args += ["--only-tasks", ",".join(only_tasks)]
    if limit is not None:
        args += ["--limit", str(limit)]
    return shlex.join([*args, *overrides])


# ---- the command -----------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``dcbench report``."""
    parser.add_argument("--config", required=True, help="report config (e.g. configs/embedded/zero_shot.yaml)")
    parser.add_argument("--run-dir", required=True,
                        help="where the runs (runs/<task>/<scorer>), report.md, report.json and figures/ go")
    parser.add_argument("--only-scorers", help="comma-separated rows of the config to run (default: all)")
    parser.add_argument("--only-tasks", help="comma-separated tasks of the config to run (default: all)")
    parser.add_argument("--limit", type=int, help="score only the first N items of every task (data.limit)")
    parser.add_argument("--no-run", action="store_true",
                        help="run nothing: build the report from the finished runs already in --run-dir")
    parser.add_argument("--overwrite", action="store_true", help="discard the records already in the run dirs")


def _split(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def cmd_report(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    """``dcbench report``: 0 when every run and figure succeeded, 1 when something failed (see report.md)."""
    report = make_report(args.config, args.run_dir, overrides, _split(args.only_scorers), _split(args.only_tasks),
                         args.limit, run=not args.no_run, overwrite=args.overwrite)
    root = Path(args.run_dir)
    print(f"dcbench: report in {root / 'report.md'} and {root / 'report.json'}")
    for failure in report["failures"]:
        where = f"{failure['task']}/{failure['scorer']}" if "task" in failure else f"figure {failure['figure']}"
        print(f"  failed: {where}: {_one_line(failure['error'])}")
    return 1 if report["failures"] else 0
