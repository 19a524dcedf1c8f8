import json

import pytest
import torch

from dcbench.calibration import calibrate_run, fit_temperature
from dcbench.cli import main
from dcbench.writers import RunDirectoryError


def _sample(n, n_classes, tau, seed):
    """Errors and labels drawn from p(c|x) = softmax(-error / tau): the fitted tau should be near tau."""
    g = torch.Generator().manual_seed(seed)
    errors = torch.rand(n, n_classes, generator=g, dtype=torch.float64) * 0.3
    labels = torch.multinomial(torch.softmax(-errors / tau, dim=1), 1, generator=g).squeeze(1)
    return errors, labels


def test_fit_temperature_recovers_the_generating_temperature():
    errors, labels = _sample(4000, 6, 0.05, seed=0)
    assert fit_temperature(errors[:, None, :], labels) == pytest.approx(0.05, rel=0.1)


def _write(run_dir, records):
    run_dir.mkdir()
    with (run_dir / "records.jsonl").open("w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def test_calibrate_command_reads_the_stage_errors_of_a_run(tmp_path, capsys):
    errors, labels = _sample(300, 4, 0.02, seed=1)
    _write(tmp_path / "run", [{"label": int(y), "stage_errors": [e.tolist()]}
                              for y, e in zip(labels, errors, strict=True)])
    result = calibrate_run(tmp_path / "run")
    assert result["n_images"] == 300 and 0.01 < result["temperature"] < 0.04
    assert main(["calibrate", "--run-dir", str(tmp_path / "run")]) == 0
    assert "temperature" in capsys.readouterr().out


def test_calibrate_names_the_problem(tmp_path, capsys):
    with pytest.raises(RunDirectoryError, match="not found"):
        calibrate_run(tmp_path)
    _write(tmp_path / "clip", [{"label": 0, "logits": [1.0, 2.0]}])
    assert main(["calibrate", "--run-dir", str(tmp_path / "clip")]) == 2
    assert "no 'stage_errors'" in capsys.readouterr().err
