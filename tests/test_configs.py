"""The shipped YAML configs: every one resolves and names registered components; the real-model ones run.

The real-model configs (Stable Diffusion 2 zero-shot, DiT-XL/2 on ImageNet) need a GPU and Hub weights.
Here each is wired end to end with its backbone pointed at the tiny model of the same family
(tests/conftest.py), a tiny image folder, CPU, and a pruning schedule of the same shape but small sizes.
The CLIP baselines run the same way on a tiny open_clip model, and the Winoground (matching) configs on a
tiny fake copy of Winoground. Report configs (``scorers:`` and ``tasks:``, for ``dcbench report``) are
checked cell by cell: every (task, scorer) predict config they make names registered components.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from dcbench.config import load_config, resolve
from dcbench.registry import BACKBONES, DATASETS, PRUNING, SAMPLERS, SCORERS

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: threads only add overhead

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
#: report configs (``dcbench report``: a mapping of scorers and one of tasks) and predict configs (the others)
REPORT_CONFIGS = sorted(p for p in CONFIG_DIR.rglob("*.yaml") if "scorers" in load_config(p))
#: bench configs (``dcbench bench``: ``strategies`` and ``tasks``)
BENCH_CONFIGS = sorted(p for p in CONFIG_DIR.rglob("*.yaml") if "strategies" in load_config(p))
CONFIGS = sorted(p for p in CONFIG_DIR.rglob("*.yaml") if p not in REPORT_CONFIGS and p not in BENCH_CONFIGS)
#: backbones whose configs point at large Hub models, and so get a tiny stand-in for the wiring test
REAL_MODEL_BACKBONES = ("stable-diffusion", "dit")
TABLE1 = ("cifar10", "stl10", "pets", "flowers102", "food101", "aircraft", "imagenet")
#: the reference scripts' settings (n_samples, to_keep), known for certain
OFFICIAL = {
    "cifar10": ([50, 500], [5, 1]),
    "pets": ([25, 250], [5, 1]),
    "food101": ([20, 50, 100, 500], [20, 10, 5, 1]),
    "imagenet": ([50, 100, 500, 1000], [500, 50, 10, 1]),
}


def _name(spec: str | Mapping[str, Any]) -> str:
    return spec if isinstance(spec, str) else spec["name"]


def _options(spec: str | Mapping[str, Any]) -> set[str]:
    return set() if isinstance(spec, str) else set(spec) - {"name"}


def _assert_accepts(factory: Any, options: set[str], what: str) -> None:
    """The factory takes these keyword options (a typo in a config fails here, not after loading a model)."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    assert options <= set(params), f"{what} does not take {sorted(options - set(params))}"


def _rel(path: Path) -> str:
    return path.relative_to(CONFIG_DIR).as_posix()


def _backbone(path: Path) -> str | None:
    backbone = resolve(path)["scorer"].get("backbone")
    return None if backbone is None else _name(backbone)


def _task(path: Path) -> str:
    return resolve(path).get("task", "classification")


#: classification configs with a large Hub backbone (the matching ones are wired below, on a fake Winoground)
REAL_MODEL_CONFIGS = [p for p in CONFIGS if _backbone(p) in REAL_MODEL_BACKBONES and _task(p) == "classification"]


def test_the_reference_configs_are_shipped():
    names = {_rel(p) for p in CONFIGS}
    for dataset in TABLE1:
        assert f"zero_shot/sd2_{dataset}.yaml" in names
    assert "supervised/dit_imagenet.yaml" in names
    assert len(REAL_MODEL_CONFIGS) >= len(TABLE1) + 1


def check_components(config: Mapping[str, Any]) -> None:
    """Every component a predict config names is registered and takes the options given to it."""
    scorer = config["scorer"]
    _assert_accepts(SCORERS.get(_name(scorer)), _options(scorer), f"scorer {_name(scorer)!r}")
    if isinstance(scorer, str):
        scorer = {"name": scorer}
    if "backbone" in scorer:
        name = _name(scorer["backbone"])
        _assert_accepts(BACKBONES.get(name), _options(scorer["backbone"]), f"backbone {name!r}")
    if "sampler" in scorer:
        SAMPLERS.build(scorer["sampler"])
    if "pruning" in scorer:
        PRUNING.build(scorer["pruning"])
    dataset = config["data"]["dataset"]
    _assert_accepts(DATASETS.get(_name(dataset)), _options(dataset), f"dataset {_name(dataset)!r}")
    from dcbench.data.datamodule import ClassificationDataModule
    from dcbench.data.pairs import MatchingDataModule

    datamodule = MatchingDataModule if config.get("task") == "matching" else ClassificationDataModule
    _assert_accepts(datamodule, set(config["data"]), datamodule.__name__)  # e.g. no templates for pairs
    import lightning as L

    _assert_accepts(L.Trainer, set(config["trainer"]), "lightning.Trainer")
    assert _name(config["logger"]) in ("none", "csv", "wandb")


@pytest.mark.parametrize("path", CONFIGS, ids=_rel)
def test_config_resolves_and_its_components_are_registered(path):
    check_components(resolve(path))


@pytest.mark.parametrize("dataset", TABLE1)
def test_zero_shot_configs_follow_the_paper(dataset):
    config = resolve(CONFIG_DIR / "zero_shot" / f"sd2_{dataset}.yaml")
    scorer = config["scorer"]
    assert scorer["backbone"] == {"name": "stable-diffusion", "pretrained": "stabilityai/stable-diffusion-2-base",
                                  "torch_dtype": "float16"}
    assert _name(scorer["sampler"]) == "even"
    assert scorer["pruning"]["name"] == "staged"
    assert (scorer["n_trials"], scorer["batch_size"]) == (1, 32)
    assert config["data"]["image_size"] == 512
    assert config["data"]["templates"] == ["a photo of a {}."]
    assert _name(config["data"]["dataset"]) == dataset
    assert config["trainer"] == {"accelerator": "gpu", "devices": 1, "precision": "32-true"}
    assert config["logger"] == "wandb"
    if dataset in OFFICIAL:
        n_samples, to_keep = OFFICIAL[dataset]
        assert (scorer["pruning"]["n_samples"], scorer["pruning"]["to_keep"]) == (n_samples, to_keep)
    else:  # settings guessed from a similar dataset must say so
        assert "not verified against the official scripts" in (CONFIG_DIR / "zero_shot" / f"sd2_{dataset}.yaml"
                                                                ).read_text()


def test_dit_config_scores_every_class_at_250_timesteps():
    config = resolve(CONFIG_DIR / "supervised" / "dit_imagenet.yaml")
    scorer = config["scorer"]
    assert _name(scorer["backbone"]) == "dit" and scorer["backbone"]["pretrained"] == "facebook/DiT-XL-2-256"
    assert scorer["pruning"] == {"name": "none", "n_samples": 250}
    assert _name(scorer["sampler"]) == "even" and scorer["loss"] == "l2"
    assert config["data"]["image_size"] == 256
    assert _name(config["data"]["dataset"]) == "imagenet"


def shrink_pruning(pruning: dict[str, Any]) -> dict[str, Any]:
    """The same kind of schedule with as many stages, in miniature: n_samples 2, 4, 8, ...; to_keep k, ..., 2, 1.

    Powers of two keep every stage's new timesteps non-empty, as in the official schedules.
    """
    if pruning["name"] == "staged":
        k = len(pruning["n_samples"])
        return {**pruning, "n_samples": [2 ** (i + 1) for i in range(k)], "to_keep": [k - i for i in range(k)]}
    if pruning["name"] == "none":
        return {**pruning, "n_samples": 2}
    raise AssertionError(f"add a miniature of pruning {pruning['name']!r} to shrink_pruning")


def run_on_tiny_model(path: Path, tiny_models: dict[str, Path], imagefolder: Path, tiny_info: Any, run_dir: Path,
                      keep_trainer: bool = False) -> None:
    """Run the config with the tiny model of its backbone family on 2 images; check records and NFE."""
    from dcbench.cli import run_predict

    config = resolve(path)
    original = copy.deepcopy(config)
    scorer = config["scorer"]
    backbone = _name(scorer["backbone"])
    scorer["backbone"] = {**scorer["backbone"], "pretrained": str(tiny_models[backbone])}  # dtype etc. kept
    scorer["pruning"] = shrink_pruning(scorer["pruning"])
    config["data"].update(dataset={"name": "imagefolder", "root": str(imagefolder)},
                          image_size=tiny_info.image_size, limit=2, num_workers=0)
    if not keep_trainer:
        config["trainer"].update(accelerator="cpu", devices=1)
    config["logger"] = "none"

    metrics = run_predict(config, run_dir)
    assert metrics is not None and metrics["n_images"] == 2
    assert json.loads((run_dir / "metrics.json").read_text())["n_images"] == 2
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    n_candidates = len(tiny_info.classes) * len(config["data"].get("templates") or ["{}"])
    pruning = scorer["pruning"]
    if pruning["name"] == "staged":
        expected = tiny_info.reference_nfe(n_candidates, pruning["n_samples"], pruning["to_keep"],
                                           scorer.get("n_trials", 1))
    else:
        expected = n_candidates * pruning["n_samples"] * scorer.get("n_trials", 1)
    assert [r["nfe"] for r in records] == [expected, expected]
    # only what the test swapped differs from the shipped config
    assert {k: v for k, v in scorer.items() if k not in ("backbone", "pruning")} == {
        k: v for k, v in original["scorer"].items() if k not in ("backbone", "pruning")}


@pytest.mark.parametrize("path", REAL_MODEL_CONFIGS, ids=_rel)
def test_real_model_config_runs_on_a_tiny_model(path, tiny_models, tiny_imagefolder, tiny_info, tmp_path):
    run_on_tiny_model(path, tiny_models, tiny_imagefolder, tiny_info, tmp_path / "run")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("path", REAL_MODEL_CONFIGS[:1] + REAL_MODEL_CONFIGS[-1:], ids=_rel)
def test_real_model_config_runs_on_a_tiny_model_with_its_own_gpu_trainer(path, tiny_models, tiny_imagefolder,
                                                                         tiny_info, tmp_path):
    # the shipped trainer section (accelerator gpu, precision 32-true) with the config's float16 backbone
    run_on_tiny_model(path, tiny_models, tiny_imagefolder, tiny_info, tmp_path / "run", keep_trainer=True)


# ---- CLIP baselines, Winoground and the real-model report ----------------------------------------------
CLIP_MODELS = {"rn50": ("RN50", "openai"), "vith14": ("ViT-H-14", "laion2b_s32b_b79k")}
CLIP_CONFIGS = sorted((CONFIG_DIR / "zero_shot").glob("clip_*.yaml"))
WINOGROUND_CONFIGS = sorted((CONFIG_DIR / "winoground").glob("*.yaml"))
REAL_REPORT = CONFIG_DIR / "real" / "report.yaml"
TINY_CLIP_NAME = "dcbench-test-configs-tiny-clip"  # the architecture name is the config file's stem
TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny random open_clip model: the scorer options that load it (architecture JSON + safetensors)."""
    import open_clip
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("tiny-clip")
    config = root / f"{TINY_CLIP_NAME}.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG) + "\n")
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP_NAME)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, root / "model.safetensors")
    return {"model": TINY_CLIP_NAME, "model_config": str(config), "pretrained": str(root / "model.safetensors")}


def write_fake_winoground(root: Path, n: int = 3) -> Path:
    """A local Winoground copy in the Hub's format (examples.jsonl + images/), random 20x16 images."""
    import numpy as np
    from PIL import Image

    (root / "images").mkdir(parents=True)
    tags = ["Object", "Relation", "Both"]
    rng = np.random.default_rng(0)
    lines = []
    for k in range(n):
        for i in range(2):
            pixels = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "images" / f"ex_{k}_img_{i}.png")
        lines.append(json.dumps({"id": k, "image_0": f"ex_{k}_img_0", "image_1": f"ex_{k}_img_1",
                                 "caption_0": f"a cat left of a dog {k}", "caption_1": f"a dog left of a cat {k}",
                                 "tag": "Noun", "secondary_tag": "", "num_main_preds": 1,
                                 "collapsed_tag": tags[k % 3]}))
    (root / "examples.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _unchanged(config: Mapping[str, Any], original: Mapping[str, Any], swapped: set[str]) -> None:
    """Only what the test swapped differs from the shipped scorer section."""
    assert {k: v for k, v in config["scorer"].items() if k not in swapped} == {
        k: v for k, v in original["scorer"].items() if k not in swapped}


def test_clip_baselines_are_shipped_for_every_table1_dataset():
    names = {_rel(p) for p in CLIP_CONFIGS}
    assert names == {f"zero_shot/clip_{m}_{d}.yaml" for m in CLIP_MODELS for d in TABLE1}


@pytest.mark.parametrize("path", CLIP_CONFIGS, ids=_rel)
def test_clip_configs_match_their_diffusion_classifier_config(path):
    """Same dataset, split, template, trainer and logger as sd2_<dataset>.yaml; the model of the file name."""
    _, model_key, dataset = path.stem.split("_", 2)
    config, sd2 = resolve(path), resolve(CONFIG_DIR / "zero_shot" / f"sd2_{dataset}.yaml")
    model, pretrained = CLIP_MODELS[model_key]
    scorer = config["scorer"]
    assert (scorer["name"], scorer["model"], scorer["pretrained"]) == ("clip", model, pretrained)
    assert config["data"]["dataset"] == sd2["data"]["dataset"]
    assert config["data"]["templates"] == sd2["data"]["templates"] == ["a photo of a {}."]
    assert "image_size" not in config["data"]  # the scorer's own (224): CLIP's preprocessing
    assert (config["trainer"], config["logger"], config["task"]) == (sd2["trainer"], sd2["logger"], "classification")


@pytest.mark.parametrize("path", CLIP_CONFIGS, ids=_rel)
def test_clip_config_runs_on_a_tiny_clip(path, tiny_clip, tiny_imagefolder, tmp_path):
    from dcbench.cli import run_predict

    config = resolve(path)
    original = copy.deepcopy(config)
    config["scorer"].update(tiny_clip)  # precision, batch size etc. kept
    config["data"].update(dataset={"name": "imagefolder", "root": str(tiny_imagefolder)}, limit=2, num_workers=0)
    config["trainer"].update(accelerator="cpu", devices=1, enable_progress_bar=False)
    config["logger"] = "none"
    metrics = run_predict(config, tmp_path / "run")
    assert metrics is not None and metrics["n_images"] == 2 and metrics["nfe_per_image"] == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(len(r["probs"]) == len(metrics["classes"]) for r in records)
    _unchanged(config, original, set(tiny_clip))


def test_winoground_configs_follow_the_paper():
    assert {_rel(p) for p in WINOGROUND_CONFIGS} == {"winoground/sd2.yaml", "winoground/clip_vith14.yaml",
                                                     "winoground/clip_rn50.yaml"}
    configs = {p.stem: resolve(p) for p in WINOGROUND_CONFIGS}
    for config in configs.values():
        assert config["task"] == "matching"
        assert config["data"]["dataset"] == {"name": "winoground"}
        assert "templates" not in config["data"] and "prompts" not in config["data"]  # captions are the prompts
    sd2 = configs["sd2"]["scorer"]
    assert sd2["backbone"] == {"name": "stable-diffusion", "pretrained": "stabilityai/stable-diffusion-2-base",
                               "torch_dtype": "float16"}
    assert configs["sd2"]["data"]["image_size"] == 512
    # exhaustive: every one of the 1,000 training timesteps, no pruning
    assert sd2["pruning"] == {"name": "none", "n_samples": 1000}
    sampler = SAMPLERS.build(sd2["sampler"])
    assert sampler(1000, 1000, torch.Generator().manual_seed(0)) == list(range(1000))
    for key, (model, pretrained) in CLIP_MODELS.items():
        scorer = configs[f"clip_{key}"]["scorer"]
        assert (scorer["name"], scorer["model"], scorer["pretrained"]) == ("clip", model, pretrained)


@pytest.mark.parametrize("path", WINOGROUND_CONFIGS, ids=_rel)
def test_winoground_config_runs_on_tiny_models(path, tiny_clip, tiny_models, tiny_info, tmp_path):
    """The shipped matching config on a fake Winoground (3 pairs) with the tiny model of its family."""
    try:
        import dcbench.matching  # noqa: F401
    except ImportError:
        pytest.skip("dcbench.matching (the matching task runner) is not there yet")
    from dcbench.cli import run_predict

    config = resolve(path)
    original = copy.deepcopy(config)
    scorer = config["scorer"]
    if scorer["name"] == "clip":
        scorer.update(tiny_clip)
        swapped = set(tiny_clip)
    else:
        scorer["backbone"] = {**scorer["backbone"], "pretrained": str(tiny_models[_name(scorer["backbone"])])}
        scorer["pruning"] = shrink_pruning(scorer["pruning"])
        config["data"]["image_size"] = tiny_info.image_size
        swapped = {"backbone", "pruning"}
    root = write_fake_winoground(tmp_path / "winoground")
    config["data"].update(dataset={**config["data"]["dataset"], "root": str(root)}, batch_size=2, num_workers=0)
    config["trainer"].update(accelerator="cpu", devices=1, enable_progress_bar=False)
    config["logger"] = "none"

    metrics = run_predict(config, tmp_path / "run")
    assert metrics is not None and metrics["n_pairs"] == 3
    assert all(0 <= metrics[f"{k}_score"] <= 1 for k in ("text", "image", "group"))
    assert metrics["group_score"] <= min(metrics["text_score"], metrics["image_score"])
    assert set(metrics["by_tag"]) == {"object", "relation", "both"}
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == ["winoground-0", "winoground-1", "winoground-2"]
    # 2 images x 2 captions x the timesteps of the (shrunk) schedule; CLIP evaluates no denoiser
    nfe = 0 if scorer["name"] == "clip" else 2 * 2 * scorer["pruning"]["n_samples"] * scorer.get("n_trials", 1)
    assert [r["nfe"] for r in records] == [nfe] * 3
    _unchanged(config, original, swapped)


def _report_cells(path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(task, row, the predict config `dcbench report` runs for that cell) for every cell of a report config."""
    from dcbench.report import load_report_config, predict_config

    config = load_report_config(path)
    return [(task, row, predict_config(config, task, row, "group")) for task in config["tasks"]
            for row in config["scorers"]]


@pytest.mark.parametrize("path", REPORT_CONFIGS, ids=_rel)
def test_report_config_cells_name_registered_components(path):
    pytest.importorskip("dcbench.report")
    cells = _report_cells(path)
    assert cells
    for _, _, config in cells:
        check_components(config)


def test_real_report_compares_the_paper_models_on_table1_and_winoground():
    pytest.importorskip("dcbench.report")
    from dcbench.report import load_report_config

    config = load_report_config(REAL_REPORT)
    assert list(config["tasks"]) == [*TABLE1, "winoground"]
    winoground = config["tasks"]["winoground"]
    assert (winoground["task"], winoground["data"]["dataset"]) == ("matching", {"name": "winoground"})
    for dataset in TABLE1:  # the same data as the single-dataset configs, with no image_size (each scorer's own)
        task = config["tasks"][dataset]
        sd2 = resolve(CONFIG_DIR / "zero_shot" / f"sd2_{dataset}.yaml")
        assert task["task"] == "classification" and "image_size" not in task["data"]
        assert task["data"]["dataset"] == sd2["data"]["dataset"]
        assert task["data"]["templates"] == sd2["data"]["templates"]
    rows = config["scorers"]
    assert len(rows) == 3
    # the rows are the scorers of the single-dataset configs (CIFAR-10's pruning schedule for the DC row)
    dc = next(spec for spec in rows.values() if spec["name"] == "diffusion-classifier")
    reference = resolve(CONFIG_DIR / "zero_shot" / "sd2_cifar10.yaml")["scorer"]
    assert dc == reference
    for key in CLIP_MODELS:
        shipped = resolve(CONFIG_DIR / "zero_shot" / f"clip_{key}_cifar10.yaml")["scorer"]
        assert any(spec == shipped for spec in rows.values()), f"no report row equals clip_{key}_cifar10.yaml's scorer"


@pytest.mark.parametrize("path", BENCH_CONFIGS, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_bench_configs_load_and_name_known_plugins(path):
    from dcbench.bench import load_bench_config
    from dcbench.registry import BACKBONES, DATASETS, PRUNING

    config = load_bench_config(path)
    for strategy in config["strategies"].values():
        assert strategy["pruning"]["name"] in PRUNING.names()
    specs = [*config["tasks"].values(), *([config["classes"]["spec"]] if "spec" in config.get("classes", {}) else [])]
    for spec in specs:
        assert spec["backbone"]["name"] in BACKBONES.names()
        assert spec["data"]["dataset"]["name"] in DATASETS.names()
