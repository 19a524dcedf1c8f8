"""The `dcbench` command end to end on the embedded model (CPU, offline)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcbench.cli import main
from dcbench.data.digits import DigitsDataset

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


def records(run_dir: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    return {r["id"]: {k: v for k, v in r.items() if k != "seconds"} for r in rows}


def dcbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcbench.cli", *args], env=ENV, capture_output=True, text=True,
                          timeout=600)


def test_predict_embedded_default_end_to_end(tmp_path, capsys):
    """The README's main job: the shipped model on the whole digits test split."""
    assert main(["predict", "--run-dir", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_images"] == 360 and metrics["nfe_per_image"] == 100
    assert metrics["top1"] >= 0.97, metrics  # the shipped weights' documented accuracy
    assert {"top5", "mean_per_class", "ece", "seconds_per_image"} <= set(metrics)
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "logs").is_dir()  # csv logger
    assert "top1" in capsys.readouterr().out
    # Running the same command again resumes: nothing left, same metrics.
    assert main(["predict", "--run-dir", str(tmp_path)]) == 0
    assert "all 360 items were already scored" in capsys.readouterr().err
    again = json.loads((tmp_path / "metrics.json").read_text())
    assert again["top1"] == metrics["top1"] and again["n_images"] == 360


def test_killed_run_resumes_to_identical_records(tmp_path):
    args = ["predict", "--data.limit", "120", "--data.batch_size", "1", "--scorer.batch_size", "10", "--logger",
            "none", "--trainer.enable_progress_bar", "false"]
    proc = subprocess.Popen([sys.executable, "-m", "dcbench.cli", *args, "--run-dir", str(tmp_path / "killed")],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    file = tmp_path / "killed" / "records.jsonl"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if file.is_file() and len(file.read_text().splitlines()) >= 5:
                break
            time.sleep(0.02)
    finally:  # never leave the run behind, whatever happens here
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = len(file.read_text().splitlines())
    assert 5 <= partial < 120, f"the run was not killed midway ({partial} records)"
    assert dcbench(*args, "--run-dir", str(tmp_path / "killed")).returncode == 0
    assert dcbench(*args, "--data.batch_size", "7", "--run-dir", str(tmp_path / "straight")).returncode == 0
    resumed, straight = records(tmp_path / "killed"), records(tmp_path / "straight")
    assert len(resumed) == 120 and resumed == straight


def test_same_records_with_two_processes(tmp_path):
    common = ["--data.limit", "24", "--data.batch_size", "4", "--logger", "none", "--trainer.accelerator", "cpu"]
    one = dcbench("predict", *common, "--run-dir", str(tmp_path / "one"))
    two = dcbench("predict", *common, "--trainer.devices", "2", "--trainer.strategy", "ddp",
                  "--run-dir", str(tmp_path / "two"))
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    assert (tmp_path / "two" / "records.rank1.jsonl").is_file()
    from dcbench.writers import RunDirectory

    strip = lambda rs: {k: {f: v for f, v in r.items() if f != "seconds"} for k, r in rs.items()}  # noqa: E731
    assert strip(RunDirectory(tmp_path / "two").records()) == strip(RunDirectory(tmp_path / "one").records())
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["n_images"] == 24


def digit_folder(root: Path, per_class: int = 3) -> Path:
    ds = DigitsDataset("test")
    counts = {"0": 0, "1": 0}
    for i in range(len(ds)):
        image, label = ds.load(i)
        name = str(label)
        if name in counts and counts[name] < per_class:
            (root / name).mkdir(parents=True, exist_ok=True)
            image.save(root / name / f"{counts[name]}.png")
            counts[name] += 1
    return root


def test_corrupt_image_stops_with_a_clear_error_and_keeps_finished_records(tmp_path, capsys):
    folder = digit_folder(tmp_path / "images")
    (folder / "1" / "zz_broken.png").write_bytes(b"not a png")
    args = ["predict", "--data.dataset", f"{{name: imagefolder, root: {folder}}}", "--data.batch_size", "2",
            "--logger", "none", "--run-dir", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "zz_broken.png" in err and "Remove or replace" in err
    assert len(records(tmp_path / "run")) == 6  # the 6 good images were scored before the bad one
    (folder / "1" / "zz_broken.png").unlink()
    assert main(args) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["n_images"] == 6


@pytest.mark.parametrize(
    ("override", "message"),
    [(["--scorer.sampler.name", "evenly"], "unknown timestep sampler 'evenly'.*even, fixed, uniform, window"),
     (["--scorer.backbone.name", "sd3"], "unknown backbone 'sd3'"),
     (["--data.templates", "[]"], "template list is empty"),
     (["--scorer.pruning.sample", "3"], "unknown option.*sample.*accepts: n_samples"),
     (["--trainer.devicez", "2"], "bad trainer option"),
     (["--data.dataset.name", "cifar10", "--data.dataset.root", "/nonexistent"], "cifar10 not found")],
)
def test_bad_input_gives_a_clear_error(tmp_path, capsys, override, message):
    assert main(["predict", *override, "--run-dir", str(tmp_path)]) == 2
    import re

    assert re.search(message, capsys.readouterr().err)


def test_prompt_csv_with_missing_columns(tmp_path, capsys):
    csv = tmp_path / "prompts.csv"
    csv.write_text("text,label\nzero,0\n")
    assert main(["predict", "--data.prompts", str(csv), "--run-dir", str(tmp_path / "run")]) == 2
    assert "lacks column(s) prompt, classname, classidx" in capsys.readouterr().err


def test_wandb_logger_runs_offline(tmp_path):
    assert main(["predict", "--data.limit", "10", "--logger", "wandb", "--run-dir", str(tmp_path)]) == 0
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_list_and_print_config(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ["stable-diffusion", "dit", "unet-class", "none", "staged", "even", "uniform", "fixed", "window"]:
        assert f"  {name} " in out
    assert main(["predict", "--print-config", "--seed", "5"]) == 0
    assert "seed: 5" in capsys.readouterr().out


def test_invalid_option_value_is_a_clear_error(tmp_path, capsys):
    assert main(["predict", "--scorer.loss", "l3", "--run-dir", str(tmp_path)]) == 2
    assert "scorer 'diffusion-classifier': unknown loss 'l3'" in capsys.readouterr().err
