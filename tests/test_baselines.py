"""``dcbench fit-baseline``: the command end to end, resuming, the run directory, the shipped configs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from safetensors.torch import load_file

from dcbench.baselines.fit import FITS, _parse, family_members, fit_baseline
from dcbench.cli import main
from dcbench.config import ConfigError, resolve
from dcbench.writers import RunDirectoryError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
BASELINE_CONFIGS = sorted(CONFIG_DIR.glob("*/baselines/*.yaml"))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add overhead
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def config(tiny_text_unet_dir, tiny_imagefolder, baseline_config):
    return baseline_config("sd-features", {"name": "text-unet", "pretrained": str(tiny_text_unet_dir)},
                           tiny_imagefolder)


def test_fit_then_predict_from_the_command_line(config, tmp_path, capsys):
    cfg = tmp_path / "fit.yaml"
    cfg.write_text(yaml.safe_dump(config))
    fit_dir, run_dir = tmp_path / "fit", tmp_path / "run"
    assert main(["fit-baseline", "--config", str(cfg), "--run-dir", str(fit_dir), "--scorer.fit.t", "50"]) == 0
    assert "train_accuracy" in capsys.readouterr().out
    record = json.loads((fit_dir / "baseline.json").read_text())
    assert record["features"]["t"] == 50 and record["config"]["scorer"]["fit"]["t"] == 50
    assert main(["predict", "--config", str(cfg), "--run-dir", str(run_dir), "--scorer.checkpoint", str(fit_dir)]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n_images"] == 6 and metrics["nfe_per_image"] == 1


def test_command_line_errors_are_user_errors(config, tmp_path, capsys):
    cfg = tmp_path / "fit.yaml"
    config["scorer"]["fit"]["tee"] = 100
    cfg.write_text(yaml.safe_dump(config))
    assert main(["fit-baseline", "--config", str(cfg), "--run-dir", str(tmp_path / "fit")]) == 2
    assert "unknown option(s) tee; it accepts: backbone, dataset" in capsys.readouterr().err
    assert main(["fit-baseline", "--config", str(cfg), "--run-dir", str(tmp_path / "b"), "--scorer.name", "clip"]) == 2
    assert "fit-baseline fits the scorers sd-features, synthetic-data" in capsys.readouterr().err
    del config["scorer"]["fit"]["tee"]
    cfg.write_text(yaml.safe_dump(config))
    assert main(["fit-baseline", "--config", str(cfg), "--run-dir", str(tmp_path / "c"), "--trainer.foo", "1"]) == 2
    assert "bad trainer option" in capsys.readouterr().err


class Interrupt(L.Callback):
    """Fails the fit after the given step (a killed process, as far as the run directory can tell)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("interrupted")


def test_an_interrupted_fit_resumes_from_its_last_checkpoint(config, tmp_path, monkeypatch):
    run = tmp_path / "fit"
    config["scorer"]["fit"]["train"].update(steps=6, checkpoint_every=2)
    with pytest.raises(RuntimeError, match="interrupted"):
        fit_baseline(config, run, callbacks=[Interrupt(3)])
    assert not (run / "baseline.json").exists()
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 2  # plain data: loads safely

    # the rerun takes the features from the cache and training from step 2
    def no_extraction(*args: object) -> None:
        raise AssertionError("features were extracted again")

    monkeypatch.setattr("dcbench.scorers.sd_features.MidBlockFeatures.forward", no_extraction)
    record = fit_baseline(config, run)
    assert record["training"]["resumed_from_step"] == 2 and record["training"]["final_step"] == 6
    (chunk,) = (run / "cache").glob("features-*.safetensors")  # the first run's extraction cost is kept
    assert record["features"]["seconds"] == round(float(load_file(chunk)["seconds"]), 2)

    # a finished fit is returned as it is
    assert fit_baseline(config, run) == record


def test_a_run_directory_holds_one_fit(config, tmp_path):
    run = tmp_path / "fit"
    fit_baseline(config, run)
    other = copy.deepcopy(config)
    other["scorer"]["fit"]["t"] = 10
    with pytest.raises(RunDirectoryError, match="different scorer config"):
        fit_baseline(other, run)
    assert fit_baseline(other, run, overwrite=True)["features"]["t"] == 10
    # where predict loads it from, and the scoring batch size, are not part of the fit
    moved = {**other, "scorer": {**other["scorer"], "checkpoint": "elsewhere", "batch_size": 3}}
    assert fit_baseline(moved, run)["features"]["t"] == 10


def test_the_fit_is_determined_by_the_seed(config, tmp_path):
    first = fit_baseline(config, tmp_path / "a")
    assert fit_baseline(config, tmp_path / "b")["training"]["train_accuracy"] == first["training"]["train_accuracy"]
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.parametrize("path", BASELINE_CONFIGS, ids=lambda p: p.relative_to(CONFIG_DIR).as_posix())
def test_shipped_baseline_configs_parse(path):
    config = resolve(path)
    kind = config["scorer"]["name"]
    options_cls, _ = FITS[kind]
    for member in family_members(config).values() or [config]:
        fit = _parse(options_cls, member["scorer"]["fit"], kind)
        assert fit.train.steps >= 1
    assert config["scorer"]["checkpoint"]


def test_the_fit_section_of_a_config_is_checked():
    with pytest.raises(ConfigError, match=r"scorer\.fit of synthetic-data\.train got unknown option"):
        _parse(FITS["synthetic-data"][0], {"backbone": "x", "train": {"stepz": 1}}, "scorer.fit of synthetic-data")
    with pytest.raises(ConfigError, match="no-such-net"):
        _parse(FITS["synthetic-data"][0], {"backbone": "x", "model": {"name": "no-such-net"}}, "fit")


REAL_MODEL_CONFIGS = sorted(CONFIG_DIR.glob("zero_shot/baselines/*.yaml"))


@pytest.mark.parametrize("path", REAL_MODEL_CONFIGS, ids=lambda p: p.name)
def test_real_model_config_fits_and_predicts_on_a_tiny_model(path, tiny_sd_dir, tiny_imagefolder, tmp_path):
    """The Stable Diffusion 2 configs, with the tiny SD, the tiny image folder, CPU and a few images and steps."""
    from dcbench.cli import run_predict

    config = resolve(path)
    fit = config["scorer"]["fit"]
    assert fit["backbone"]["name"] == "stable-diffusion"
    fit["backbone"]["pretrained"] = str(tiny_sd_dir)  # its dtype kept
    folder = {"name": "imagefolder", "root": str(tiny_imagefolder)}
    if "dataset" in fit:
        fit.update(dataset=folder, head={**fit["head"], "hidden": 8})
    else:
        fit.update(images_per_class=1, num_inference_steps=2, model={"name": "resnet10t", "channels": [8] * 4,
                                                                       "stem_width": 8})
    fit["train"].update(steps=2, batch_size=2, checkpoint_every=1)
    config["data"].update(dataset=folder, num_workers=0, limit=2)
    config["trainer"] = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False}
    config["logger"] = "none"
    record = fit_baseline(config, tmp_path / "fit")
    assert record["training"]["final_step"] == 2
    config["scorer"]["checkpoint"] = str(tmp_path / "fit")
    metrics = run_predict(config, tmp_path / "run")
    assert metrics["n_images"] == 2


def test_a_backbone_without_a_null_condition_cannot_guide(tiny_unet_class_dir, tiny_imagefolder, baseline_config,
                                                         tmp_path):
    config = baseline_config("synthetic-data", {"name": "unet-class", "pretrained": str(tiny_unet_class_dir)},
                             tiny_imagefolder, guidance_scale=3.0)
    with pytest.raises(ConfigError, match="class-conditional: it cannot take free text"):
        fit_baseline(config, tmp_path / "fit")
    # without guidance a class-conditional model generates from its class ids
    config["scorer"]["fit"]["guidance_scale"] = 1.0
    record = fit_baseline(config, tmp_path / "fit", overwrite=True)
    assert record["generation"]["nfe"] == 3 * 2 * 2  # 3 classes x 2 images x 2 steps, one call each


def timm_family_config(folder: Path) -> dict:
    tiny = {"name": "resnet10t", "channels": [8] * 4, "stem_width": 8}
    return {"seed": 0, "task": "classification",
            "scorer": {"name": "timm", "checkpoint": "unused", "batch_size": 4,
                       "fit": {"dataset": {"name": "imagefolder", "root": str(folder)}, "image_size": 8,
                               "model": tiny, "train": {"steps": 2, "batch_size": 2, "checkpoint_every": 1},
                               "family": {"short": {}, "longer": {"train": {"steps": 3}}}}},
            "data": {"dataset": {"name": "imagefolder", "root": str(folder)}, "batch_size": 4},
            "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False}, "logger": "none"}


def test_a_timm_family_fits_every_member_then_each_predicts(tiny_imagefolder, tmp_path, capsys, monkeypatch):
    cfg, fit_dir = tmp_path / "family.yaml", tmp_path / "fit"
    cfg.write_text(yaml.safe_dump(timm_family_config(tiny_imagefolder), sort_keys=False))
    assert main(["fit-baseline", "--config", str(cfg), "--run-dir", str(fit_dir)]) == 0
    assert "fitted 2 family members" in capsys.readouterr().out
    family = json.loads((fit_dir / "family.json").read_text())["members"]
    assert {k: v["steps"] for k, v in family.items()} == {"short": 2, "longer": 3}
    record = json.loads((fit_dir / "longer" / "baseline.json").read_text())
    assert record["kind"] == "timm" and record["image_size"] == 8 and record["parameters"] > 0
    assert record["data"]["n_images"] == 6 and record["training"]["final_step"] == 3

    # a rerun reuses the finished members; --only picks some
    monkeypatch.setattr("dcbench.baselines.fit.train_classifier", lambda *a, **k: pytest.fail("trained again"))
    assert main(["fit-baseline", "--config", str(cfg), "--run-dir", str(fit_dir), "--only", "short"]) == 0
    assert main(["fit-baseline", "--config", str(cfg), "--run-dir", str(fit_dir), "--only", "nope"]) == 2
    assert "no family member(s) nope; the family has short, longer" in capsys.readouterr().err

    run = tmp_path / "run"
    assert main(["predict", "--config", str(cfg), "--run-dir", str(run), "--scorer.checkpoint",
                 str(fit_dir / "longer")]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_images"] == 6 and metrics["nfe_per_image"] == 0


def test_a_timm_fit_checks_its_train_split_and_options(tiny_imagefolder, tmp_path):
    config = timm_family_config(tiny_imagefolder)
    del config["scorer"]["fit"]["family"]
    with pytest.raises(ConfigError, match="image_channels must be 1 or 3"):
        fit_baseline({**config, "scorer": {**config["scorer"], "fit": {**config["scorer"]["fit"],
                                                                        "image_channels": 2}}}, tmp_path / "a")
    digits = {**config["scorer"]["fit"], "dataset": {"name": "digits", "split": "train"}}
    with pytest.raises(Exception, match="they must be the same, in the same order"):
        fit_baseline({**config, "scorer": {**config["scorer"], "fit": digits}}, tmp_path / "b")
