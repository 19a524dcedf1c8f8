"""``dcbench report`` from fake run directories: numbers from the runs' files, n/a, failures, figures, W&B names.

``dcbench.cli.run_predict`` is replaced by a fake that writes a run directory the way the real one does
(``config.yaml`` through the real :class:`RunDirectory`, then ``records.jsonl`` and ``metrics.json``), with
records drawn from a seeded RNG and metrics computed from them. No model is loaded.
"""

from __future__ import annotations

import inspect
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from dcbench import cli, figures
from dcbench.cli import main
from dcbench.config import result_identity
from dcbench.metrics import classification_metrics
from dcbench.registry import BACKBONES, DATASETS, PRUNING, SAMPLERS, SCORERS
from dcbench.report import load_report_config, matching_support, predict_config
from dcbench.writers import RunDirectory, RunDirectoryError

CLASSES = ["red circle", "red square", "blue circle", "blue square", "green cross", "green triangle"]
HELD_OUT = (0, 3)
TAGS = ("attribute", "relation", "object")
SHIPPED = Path(__file__).resolve().parents[1] / "configs" / "embedded" / "zero_shot.yaml"


class _PairScorer:
    """Stands for a scorer class that can score image-text pairs."""

    def text_image_scores(self, images: Any, texts: Any) -> Any: ...


class _ImageOnlyScorer:
    """Stands for a scorer class without ``text_image_scores`` (like sd-features)."""


def _pairs_factory(**options: Any) -> _PairScorer:
    return _PairScorer()


def _image_only_factory(**options: Any) -> _ImageOnlyScorer:
    return _ImageOnlyScorer()


@pytest.fixture
def fake_scorers(monkeypatch):
    """diffusion-classifier (pairs), report-test-features (images only), report-test-broken; clip is the real one."""
    SCORERS.names()  # load the built-ins first, so that the patches are what stays
    monkeypatch.setitem(SCORERS._factories, "diffusion-classifier", _pairs_factory)
    monkeypatch.setitem(SCORERS._factories, "report-test-features", _image_only_factory)
    monkeypatch.setitem(SCORERS._factories, "report-test-broken", _pairs_factory)


def _rng(config: dict[str, Any]) -> np.random.Generator:
    dataset = config.get("data", {}).get("dataset")
    key = json.dumps([config["seed"], config["task"], config["scorer"], dataset], sort_keys=True)
    return np.random.default_rng(zlib.crc32(key.encode()))


def _classification_records(config: dict[str, Any], n: int) -> list[dict[str, Any]]:
    rng = _rng(config)
    records = []
    for i in range(n):
        label = i % len(CLASSES)
        logits = rng.normal(size=len(CLASSES)) + 2.0 * np.eye(len(CLASSES))[label]
        probs = np.exp(logits) / np.exp(logits).sum()
        records.append({"id": f"img-{i:03d}", "label": label, "prediction": int(probs.argmax()),
                        "probs": probs.tolist(), "nfe": int(rng.integers(50, 70)), "seconds": float(rng.random())})
    return records


def _classification_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = classification_metrics(records, len(CLASSES))
    held = [r["prediction"] == r["label"] for r in records if r["label"] in HELD_OUT]
    metrics["top1_held_out"] = sum(held) / len(held)
    metrics["classes"] = CLASSES
    return metrics


def _matching_records(config: dict[str, Any], n: int) -> list[dict[str, Any]]:
    rng = _rng(config)
    records = []
    for i in range(n):
        (s00, s01), (s10, s11) = scores = (rng.normal(size=(2, 2)) + 0.5 * np.eye(2)).tolist()
        text, image = s00 > s01 and s11 > s10, s00 > s10 and s11 > s01
        records.append({"id": f"pair-{i:03d}", "tag": TAGS[i % 3], "scores": scores, "text": int(text),
                        "image": int(image), "group": int(text and image), "nfe": 0, "seconds": float(rng.random())})
    return records


def _rates(records: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)
    return {"n": n, **{f"{k}_score": sum(r[k] for r in records) / n for k in ("text", "image", "group")}}


def _matching_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    overall = _rates(records)
    return {"n_pairs": overall.pop("n"), **overall,
            "nfe_per_pair": sum(r["nfe"] for r in records) / len(records),
            "seconds_per_pair": sum(r["seconds"] for r in records) / len(records),
            "by_tag": {t: _rates([r for r in records if r["tag"] == t]) for t in TAGS}}


class FakePredict:
    """Writes a run directory as ``run_predict`` does; records are kept on a rerun (resume)."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], Path]] = []

    def __call__(self, config: dict[str, Any], run_dir: str | Path, overwrite: bool = False) -> dict[str, Any]:
        run_dir = Path(run_dir)
        self.calls.append((config, run_dir))
        run = RunDirectory(run_dir)
        run.prepare(config, result_identity, overwrite)
        if config["scorer"]["name"] == "report-test-broken":
            from dcbench.backbones.base import ModelNotFoundError

            raise ModelNotFoundError(f"checkpoint {run_dir}/missing.safetensors does not exist")
        n = config["data"].get("limit") or 24
        matching = config["task"] == "matching"
        if not run.records():
            records = (_matching_records if matching else _classification_records)(config, n)
            run.records_file(0).write_text("".join(json.dumps(r) + "\n" for r in records))
        records = sorted(run.records().values(), key=lambda r: r["id"])
        metrics = (_matching_metrics if matching else _classification_metrics)(records)
        run.write_metrics(metrics)
        return metrics


@pytest.fixture
def fake_predict(monkeypatch, fake_scorers):
    fake = FakePredict()
    monkeypatch.setattr(cli, "run_predict", fake)
    return fake


def write_config(path: Path, broken: bool = False) -> Path:
    scorers: dict[str, Any] = {
        "diffusion-classifier": {"name": "diffusion-classifier", "backbone": {"name": "text-unet"}},
        "clip": {"name": "clip", "model": "embedded:shapes-world/clip"},
        "features": {"name": "report-test-features", "checkpoint": "x"},
    }
    if broken:
        scorers["broken"] = {"name": "report-test-broken"}
    config = {"seed": 0, "scorers": scorers,
              "tasks": {"zero-shot": {"task": "classification", "data": {"dataset": {"name": "shapes-world"}}},
                        "pairs": {"task": "matching", "data": {"dataset": {"name": "shapes-world-pairs"}}}},
              "trainer": {"accelerator": "cpu"}, "logger": "none"}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def load(out: Path) -> tuple[dict[str, Any], str]:
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def row_line(md: str, scorer: str) -> str:
    return next(line for line in md.splitlines() if line.startswith(f"| {scorer} |"))


def test_report_reads_every_number_from_the_runs(tmp_path, fake_predict):
    config, out = write_config(tmp_path / "report.yaml"), tmp_path / "out"
    assert main(["report", "--config", str(config), "--run-dir", str(out)]) == 0
    report, md = load(out)

    # every (task, scorer) but features x pairs ran, with the task kind in its predict config
    ran = {(c["task"], c["scorer"]["name"]) for c, _ in fake_predict.calls}
    assert ran == {("classification", "diffusion-classifier"), ("classification", "clip"),
                   ("classification", "report-test-features"), ("matching", "diffusion-classifier"),
                   ("matching", "clip")}
    assert [r["scorer"] for r in report["rows"]] == ["diffusion-classifier", "clip", "features"]
    assert report["failures"] == []
    for row in report["rows"]:
        for task in ("zero-shot", "pairs"):
            entry = row[task]
            if (row["scorer"], task) == ("features", "pairs"):
                assert entry["status"] == "n/a" and "text_image_scores" in entry["reason"]
                continue
            metrics = json.loads((out / entry["run_dir"] / "metrics.json").read_text())
            assert entry["status"] == "ok" and {k: entry[k] for k in metrics} == metrics
    assert report["tasks"]["zero-shot"]["n"] == {"diffusion-classifier": 24, "clip": 24, "features": 24}
    assert report["tasks"]["pairs"]["tags"] == list(TAGS)

    # the markdown table holds the same numbers, n/a with its reason, and the command that made it
    for row in report["rows"]:
        line = row_line(md, row["scorer"])
        zs = row["zero-shot"]
        for key in ("top1", "mean_per_class", "top1_held_out"):
            assert f" {100 * zs[key]:.1f} " in line
        assert f" {zs['ece']:.3f} " in line
        if row["pairs"]["status"] == "ok":
            assert f" {100 * row['pairs']['group_score']:.1f} " in line
        else:
            assert line.rstrip(" |").endswith("n/a")
    assert "pairs / features: n/a, scorer 'report-test-features' cannot score image-text pairs" in md
    assert "## pairs: by swap type" in md and "| attribute (n=8) text |" in md
    assert f"dcbench report --config {config} --run-dir {out}" in md

    # figures: valid PNGs, embedded in the markdown
    names = {Path(f["path"]).stem for f in report["figures"]}
    assert names == {"zero-shot_accuracy", "zero-shot_reliability", "zero-shot_confusion_diffusion-classifier",
                     "pairs_scores"}
    for fig in report["figures"]:
        with Image.open(out / fig["path"]) as image:
            assert image.format == "PNG" and min(image.size) > 100
            image.verify()
        assert f"]({fig['path']})" in md

    # a rerun reuses the runs (the fake keeps existing records) and gives the same numbers
    assert main(["report", "--config", str(config), "--run-dir", str(out)]) == 0
    assert load(out)[0]["rows"] == report["rows"]


def test_a_failed_run_is_reported_and_the_others_survive(tmp_path, fake_predict, capsys):
    config, out = write_config(tmp_path / "report.yaml", broken=True), tmp_path / "out"
    assert main(["report", "--config", str(config), "--run-dir", str(out)]) == 1
    report, md = load(out)
    failed = {(f["task"], f["scorer"]) for f in report["failures"]}
    assert failed == {("zero-shot", "broken"), ("pairs", "broken")}
    assert all("ModelNotFoundError" in f["error"] and "missing.safetensors" in f["error"] for f in report["failures"])
    assert report["rows"][3]["zero-shot"]["status"] == "failed"
    assert report["rows"][1]["zero-shot"]["status"] == "ok" and report["rows"][1]["pairs"]["status"] == "ok"
    assert "## Failures" in md and "missing.safetensors" in md.split("## Failures")[1]
    assert "failed" in row_line(md, "broken") and "failed" not in row_line(md, "clip")
    assert "failed: zero-shot/broken" in capsys.readouterr().out


def test_a_changed_config_for_the_same_run_dir_is_a_clear_failure(tmp_path, fake_predict):
    config, out = write_config(tmp_path / "report.yaml"), tmp_path / "out"
    args = ["report", "--config", str(config), "--run-dir", str(out), "--only-scorers", "clip"]
    assert main(args) == 0
    assert main([*args, "--seed", "1"]) == 1
    failures = load(out)[0]["failures"]
    assert len(failures) == 2
    assert all(f["error"].startswith(RunDirectoryError.__name__) and "different seed" in f["error"] for f in failures)


def test_no_run_builds_the_report_from_finished_runs_only(tmp_path, fake_predict, monkeypatch):
    config, out = write_config(tmp_path / "report.yaml"), tmp_path / "out"
    assert main(["report", "--config", str(config), "--run-dir", str(out / "a")]) == 0
    first = load(out / "a")[0]

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("--no-run must not run anything")

    monkeypatch.setattr(cli, "run_predict", forbidden)
    assert main(["report", "--config", str(config), "--run-dir", str(out / "a"), "--no-run"]) == 0
    assert load(out / "a")[0]["rows"] == first["rows"]
    # another config over the same runs, or runs that do not exist: failures that say so
    assert main(["report", "--config", str(config), "--run-dir", str(out / "a"), "--no-run", "--limit", "5"]) == 1
    assert all("another config" in f["error"] for f in load(out / "a")[0]["failures"])
    assert main(["report", "--config", str(config), "--run-dir", str(out / "b"), "--no-run"]) == 1
    assert all("not run yet" in f["error"] for f in load(out / "b")[0]["failures"])


def test_only_and_limit_select_and_shrink(tmp_path, fake_predict, capsys):
    config, out = write_config(tmp_path / "report.yaml"), tmp_path / "out"
    assert main(["report", "--config", str(config), "--run-dir", str(out), "--only-scorers", "clip",
                 "--only-tasks", "zero-shot", "--limit", "7", "--trainer.devices", "1"]) == 0
    [(called, run_dir)] = fake_predict.calls
    assert called["data"]["limit"] == 7 and called["trainer"] == {"accelerator": "cpu", "devices": 1}
    assert run_dir == out / "runs" / "zero-shot" / "clip"
    report, md = load(out)
    assert [r["scorer"] for r in report["rows"]] == ["clip"] and list(report["tasks"]) == ["zero-shot"]
    assert report["rows"][0]["zero-shot"]["n_images"] == 7
    assert "--only-scorers clip --only-tasks zero-shot --limit 7 --trainer.devices 1" in md
    capsys.readouterr()
    assert main(["report", "--config", str(config), "--run-dir", str(out), "--only-scorers", "clip,sd"]) == 2
    assert "no scorer named sd in the report config; it has diffusion-classifier, clip, features" in \
        capsys.readouterr().err


def test_each_wandb_run_is_named_task_scorer_in_the_report_group(tmp_path):
    config = load_report_config(SHIPPED)
    pconfig = predict_config(config, "winoground", "clip", "my-report")
    assert pconfig["logger"] == {"name": "wandb", "run_name": "winoground/clip", "group": "my-report"}
    assert pconfig["task"] == "matching" and pconfig["scorer"] == config["scorers"]["clip"]
    logger = cli._build_logger(pconfig["logger"], tmp_path, pconfig)  # builds the logger; starts no W&B run
    assert logger._wandb_init["name"] == "winoground/clip" and logger._wandb_init["group"] == "my-report"
    assert cli._build_logger({"name": "wandb"}, tmp_path / "run-x", {})._wandb_init["name"] == "run-x"
    assert predict_config({**config, "logger": "csv"}, "zero-shot", "clip", "g")["logger"] == "csv"


def test_reliability_bins_agree_with_the_ece_in_metrics_json():
    records = _classification_records({"seed": 3, "task": "classification", "scorer": {"name": "x"}}, 60)
    probs, labels = np.array([r["probs"] for r in records]), np.array([r["label"] for r in records])
    confidence, accuracy, counts = figures.reliability_bins(probs, labels)
    from dcbench.metrics import ECE_BINS

    assert figures.RELIABILITY_BINS == ECE_BINS  # the diagram shows the bins of the ECE in metrics.json
    assert counts.sum() == 60 and len(counts) == ECE_BINS
    filled = counts > 0
    ece = float((counts[filled] / 60 * np.abs(accuracy[filled] - confidence[filled])).sum())
    assert ece == pytest.approx(classification_metrics(records, len(CLASSES))["ece"], abs=1e-5)
    matrix = figures.confusion_matrix(labels, [r["prediction"] for r in records], len(CLASSES))
    assert np.allclose(matrix.sum(axis=1), 1)
    top1 = np.mean([r["prediction"] == r["label"] for r in records])
    assert np.trace(matrix) / len(CLASSES) == pytest.approx(top1)  # balanced labels: mean diagonal = top-1


def _accepts(factory: Any, options: set[str], what: str) -> None:
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        assert options <= set(params), f"{what} does not take {sorted(options - set(params))}"


def test_shipped_report_config_tasks_and_run_settings():
    config = load_report_config(SHIPPED)
    assert list(config["scorers"]) == ["diffusion-classifier", "clip", "sd-features", "synthetic-data"]
    assert {name: t["task"] for name, t in config["tasks"].items()} == {"zero-shot": "classification",
                                                                        "winoground": "matching"}
    for task in config["tasks"].values():
        dataset = task["data"]["dataset"]
        _accepts(DATASETS.get(dataset["name"]), set(dataset) - {"name"}, f"dataset {dataset['name']!r}")
    assert config["tasks"]["zero-shot"]["data"]["dataset"]["name"] == "shapes-world"
    assert config["tasks"]["winoground"]["data"]["dataset"]["name"] == "shapes-world-pairs"
    import lightning as L

    _accepts(L.Trainer, set(config["trainer"]), "lightning.Trainer")
    assert config["logger"] == {"name": "wandb"}


@pytest.mark.parametrize("row", ["diffusion-classifier", "clip", "sd-features", "synthetic-data"])
def test_shipped_report_config_names_registered_components(row):
    spec = load_report_config(SHIPPED)["scorers"][row]
    if spec["name"] not in SCORERS.names():
        pytest.skip(f"scorer {spec['name']!r} is not registered yet")
    _accepts(SCORERS.get(spec["name"]), set(spec) - {"name"}, f"scorer {spec['name']!r}")
    if "backbone" in spec:
        backbone = spec["backbone"]
        _accepts(BACKBONES.get(backbone["name"]), set(backbone) - {"name"}, f"backbone {backbone['name']!r}")
    if "sampler" in spec:
        SAMPLERS.build(spec["sampler"])
    if "pruning" in spec:
        PRUNING.build(spec["pruning"])
    matching_support(spec)  # decided without building the scorer; no error


def test_matching_support_reads_the_scorer_class():
    assert matching_support({"name": "clip"}) is None  # CLIPScorer has text_image_scores
    from dcbench.registry import RegistryError

    with pytest.raises(RegistryError, match="unknown scorer"):
        matching_support("no-such-scorer")


def test_bad_report_configs_are_clear_errors(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"scorers": {"clip": "clip"}, "tasks": {"t": {"task": "detection", "data": {}}}}))
    assert main(["report", "--config", str(path), "--run-dir", str(tmp_path / "out")]) == 2
    assert "tasks.t needs `task: classification` or `task: matching`" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({"scorer": {"name": "clip"}, "data": {"dataset": "digits"}}))
    assert main(["report", "--config", str(path), "--run-dir", str(tmp_path / "out")]) == 2
    assert "unknown report config section(s) data, scorer" in capsys.readouterr().err


def test_real_runs_with_the_embedded_digits_model(tmp_path, capsys):
    """The real run_predict end to end: a tiny run of the shipped digits model, and a scorer whose model is missing."""
    config = {"seed": 0,
              "scorers": {"diffusion-classifier": {"name": "diffusion-classifier",
                                                   "backbone": {"name": "unet-class", "pretrained": "embedded:digits"},
                                                   "pruning": {"name": "none", "n_samples": 2}, "temperature": 0.01},
                          "missing": {"name": "diffusion-classifier",
                                      "backbone": {"name": "unet-class", "pretrained": "embedded:no-such-model"}}},
              "tasks": {"digits": {"task": "classification",
                                   "data": {"dataset": {"name": "digits", "split": "test"}, "batch_size": 4}}},
              "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False}, "logger": "none"}
    path, out = tmp_path / "report.yaml", tmp_path / "out"
    path.write_text(yaml.safe_dump(config))
    assert main(["report", "--config", str(path), "--run-dir", str(out), "--limit", "4"]) == 1
    report, md = load(out)
    entry = report["rows"][0]["digits"]
    metrics = json.loads((out / "runs" / "digits" / "diffusion-classifier" / "metrics.json").read_text())
    assert entry["status"] == "ok" and {k: entry[k] for k in metrics} == metrics
    assert metrics["n_images"] == 4 and metrics["nfe_per_image"] == 10 * 2  # 10 classes x 2 timesteps
    assert f" {100 * metrics['top1']:.1f} " in row_line(md, "diffusion-classifier")
    [failure] = report["failures"]
    assert failure["scorer"] == "missing" and "no-such-model" in failure["error"]
    assert "digits_confusion_diffusion-classifier" in {Path(f["path"]).stem for f in report["figures"]}


def write_robustness_config(path: Path) -> Path:
    scorers = {f"b{i}": {"name": "report-test-features", "checkpoint": str(i)} for i in range(4)}
    scorers["diffusion-classifier"] = {"name": "diffusion-classifier", "backbone": {"name": "unet-class"}}
    digits = {"name": "digits", "split": "test"}
    datasets = {"clean": digits, "noise": {"name": "shifted", "dataset": digits, "shift": "gaussian-noise"},
                "blur": {"name": "shifted", "dataset": digits, "shift": "gaussian-blur"}}
    tasks = {name: {"task": "classification", "data": {"dataset": dataset}} for name, dataset in datasets.items()}
    config = {"seed": 0, "scorers": scorers, "tasks": tasks, "trainer": {"accelerator": "cpu"}, "logger": "none",
              "robustness": {"id": "clean", "ood": ["noise", "blur"], "baselines": ["b0", "b1", "b2", "b3"]}}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_the_robustness_section_fits_the_baselines_and_gives_residuals(tmp_path, fake_predict):
    from scipy.stats import binomtest

    config, out = write_robustness_config(tmp_path / "report.yaml"), tmp_path / "out"
    assert main(["report", "--config", str(config), "--run-dir", str(out)]) == 0
    report, md = load(out)

    def top1(task: str, scorer: str) -> float:
        return json.loads((out / "runs" / task / scorer / "metrics.json").read_text())["top1"]

    logit = lambda p: np.log(np.clip(p, 1e-4, 1 - 1e-4) / (1 - np.clip(p, 1e-4, 1 - 1e-4)))  # noqa: E731
    for task in ("noise", "blur"):
        xs = [logit(top1("clean", f"b{i}")) for i in range(4)]
        ys = [logit(top1(task, f"b{i}")) for i in range(4)]
        slope, intercept = np.polyfit(xs, ys, 1)
        entry = report["robustness"]["ood"][task]
        assert entry["fit"]["slope"] == pytest.approx(slope) and entry["fit"]["n"] == 4
        dc = entry["rows"]["diffusion-classifier"]
        predicted = 1 / (1 + np.exp(-(slope * logit(top1("clean", "diffusion-classifier")) + intercept)))
        assert dc["effective_robustness"] == pytest.approx(top1(task, "diffusion-classifier") - predicted, abs=1e-6)
        ci = binomtest(round(24 * top1(task, "diffusion-classifier")), 24).proportion_ci(0.995, "exact")
        assert dc["effective_robustness_low"] == pytest.approx(ci.low - predicted, abs=1e-6)
    assert "## Effective robustness (ID: clean)" in md and "| b0 (baseline) |" in md
    assert "| scorer | clean top-1 % | noise top-1 % | blur top-1 % | clean NFE/img | clean ECE |" in md
    stems = {Path(f["path"]).stem for f in report["figures"]}
    assert "effective_robustness" in stems and "clean_accuracy" in stems and "noise_accuracy" not in stems
    assert "examples" in stems and not report["failures"]  # the ID and OOD images side by side


def test_bad_robustness_sections_are_clear_errors(tmp_path, capsys):
    path = write_robustness_config(tmp_path / "report.yaml")
    config = yaml.safe_load(path.read_text())
    config["robustness"]["baselines"] = ["b0", "nope"]
    path.write_text(yaml.safe_dump(config))
    assert main(["report", "--config", str(path), "--run-dir", str(tmp_path / "out")]) == 2
    assert "robustness.baselines must name at least 2 scorer rows of the config (unknown: ['nope'])" in \
        capsys.readouterr().err
    config["robustness"] = {"id": "clean", "ood": ["fog"], "baselines": ["b0", "b1"]}
    path.write_text(yaml.safe_dump(config))
    assert main(["report", "--config", str(path), "--run-dir", str(tmp_path / "out")]) == 2
    assert "robustness task 'fog' is not a classification task" in capsys.readouterr().err


def test_a_fit_without_trend_is_flagged_in_the_robustness_section():
    from dcbench.report import _robustness_markdown

    def entry(r2: float) -> dict[str, Any]:
        return {"fit": {"slope": 1.0, "intercept": 0.0, "r2": r2, "n": 3}, "rows": {}}

    section = {"id_task": "clean", "confidence": 0.995, "baselines": ["b0", "b1", "b2"],
               "ood": {"noise": entry(0.9), "contrast": entry(0.1)}}
    text = "\n".join(_robustness_markdown(section, ["b0"]))
    assert "No linear trend among the baselines on contrast (R^2 < 0.5)" in text and "on noise" not in text
    section["ood"].pop("contrast")
    assert "No linear trend" not in "\n".join(_robustness_markdown(section, ["b0"]))
