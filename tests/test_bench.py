"""dcbench bench on the shipped digits model with tiny schedules (a few seconds)."""

import json

import pytest
import yaml

from dcbench import bench
from dcbench.cli import main
from dcbench.config import ConfigError

TINY = {
    "seed": 0,
    "batch_size": 500,
    "strategies": {
        "even-2": {"group": "exhaustive", "pruning": {"name": "none", "n_samples": 2}},
        "ref": {"group": "reference", "pruning": {"name": "staged", "n_samples": [4, 8], "to_keep": [3, 1]}},
        "seq": {"group": "sequential", "pruning": {"name": "sequential", "alpha": 0.1, "round_size": 2,
                                                   "max_samples": 8}},
    },
    "tasks": {
        "digits": {
            "backbone": {"name": "unet-class", "pretrained": "embedded:digits"},
            "data": {"dataset": {"name": "digits", "split": "test"}},
            "n_images": 6,
            "strategies": ["even-2", "ref", "seq"],
            "reference": "ref",
            "wall": {"n_samples": [4, 8], "to_keep": [3, 1], "n_images": 2, "repeats": 1},
        }
    },
    "classes": {"task": "digits", "counts": [2, 5], "n_images": 3, "strategies": ["seq"]},
}


def test_bench_writes_every_measurement_and_reuses_finished_parts(tmp_path, monkeypatch, capsys):
    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump(TINY))
    assert main(["bench", "--config", str(config), "--run-dir", str(tmp_path / "run")]) == 0
    out = json.loads((tmp_path / "run" / "bench.json").read_text())
    task = out["tasks"]["digits"]
    assert [r["name"] for r in task["strategies"]] == ["even-2", "ref", "seq"]
    ref = task["strategies"][1]
    assert ref["nfe_per_image"] == 10 * 4 + 3 * 4 and ref["n_images"] == 6
    assert task["wall"]["identical_predictions"] is True
    assert task["wall_ratio"] == pytest.approx(task["wall"]["dcbench_seconds_per_image"]
                                               / task["wall"]["reference_seconds_per_image"])
    assert [p["n_classes"] for p in out["classes"]["strategies"]["seq"]["points"]] == [2, 5]
    assert set(out["targets"]) == {"nfe_ratio_at_most_0.1", "wall_ratio_at_most_0.67",
                                   "sequential_exponent_at_most_0.8"}
    for name in ("digits_accuracy_vs_nfe.png", "nfe_vs_classes.png", "wall_time.png"):
        assert (tmp_path / "run" / "figures" / name).stat().st_size > 0
    assert "nfe_ratio" in capsys.readouterr().out

    def no_rerun(*args, **kwargs):
        raise AssertionError("a finished part was recomputed")

    monkeypatch.setattr(bench, "run_strategy", no_rerun)
    monkeypatch.setattr(bench, "wall_time", no_rerun)
    monkeypatch.setattr(bench, "class_scaling", no_rerun)
    assert main(["bench", "--config", str(config), "--run-dir", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "bench.json").read_text())["tasks"] == out["tasks"]


def _row(name, group, accuracy, nfe):
    return {"name": name, "group": group, "accuracy": accuracy, "nfe_per_image": nfe}


def test_nfe_ratio_takes_the_cheapest_strategy_that_reaches_the_reference():
    rows = [_row("ref", "reference", 0.80, 1000), _row("a", "sequential", 0.797, 50),
            _row("b", "sequential", 0.81, 200), _row("c", "exhaustive", 0.70, 10)]
    result = bench.nfe_ratio(rows, "ref", tolerance=0.005)
    assert result["matched_by"] == "a" and result["nfe_ratio"] == pytest.approx(0.05)
    missed = bench.nfe_ratio(rows, "ref", tolerance=0.0)
    assert missed["matched_by"] == "b"
    none = bench.nfe_ratio(rows[:1] + rows[3:], "ref")
    assert none["nfe_ratio"] is None and none["best"]["name"] == "c"


def test_subset_keeps_only_images_of_the_chosen_classes():
    task = bench.load_task("digits", TINY["tasks"]["digits"], 30)
    small = bench.subset(task, 4, 5, seed=0)
    assert small.labels.num_classes == 4 and len(small.ids) <= 5
    for target, image_id in zip(small.targets.tolist(), small.ids, strict=True):
        original = task.targets[task.ids.index(image_id)].item()
        assert small.labels.classes[target] == task.labels.classes[original]


def test_bench_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        bench.load_bench_config(tmp_path / "missing.yaml")
    bad = dict(TINY, tasks={"digits": dict(TINY["tasks"]["digits"], reference="nope")})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="reference"):
        bench.load_bench_config(tmp_path / "bad.yaml")
