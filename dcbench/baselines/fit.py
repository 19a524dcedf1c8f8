"""``dcbench fit-baseline``: prepare a baseline's training data from a diffusion backbone, train, save.

The config is a predict config whose scorer is ``sd-features``, ``synthetic-data`` or ``timm``; ``scorer.fit``
says how to fit (:class:`FeatureFit`, :class:`SyntheticFit` with ``fit.backbone`` the diffusion model;
:class:`SupervisedFit`, a timm classifier on a labelled train split; ``fit.family`` fits several, see
:func:`fit_family`),
``data`` gives the task's classes and prompts, ``trainer`` the Lightning settings, ``seed`` every random
choice. ``scorer.checkpoint`` is what ``dcbench predict`` loads; the fit writes to ``--run-dir`` instead.
Layout of the run directory::

    DIR/fit_config.yaml           the resolved config; a rerun must match it (or pass --overwrite)
    DIR/cache/*.safetensors       the prepared data in chunks (features, or generated images as uint8)
    DIR/checkpoints/last.ckpt     the Lightning checkpoint
    DIR/samples.png               synthetic-data: one generated image per class, to look at
    DIR/model.safetensors         the result (dcbench.baselines.store), with
    DIR/baseline.json             what rebuilds it and how it was fitted

A rerun of an interrupted fit skips the chunks already in the cache and resumes training from
``last.ckpt``; a rerun of a finished one returns its record.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from dcbench.backbones.base import Backbone
from dcbench.baselines.store import RECORD_FILE, WEIGHTS_FILE, save_baseline
from dcbench.baselines.training import CHECKPOINT_DIR, TrainOptions, train_classifier
from dcbench.config import ConfigError
from dcbench.data.labels import LabelSet, LabelSetError
from dcbench.writers import RunDirectoryError

__all__ = ["FeatureFit", "SupervisedFit", "SyntheticFit", "family_members", "fit_baseline", "fit_family", "task_labels"]

CONFIG_FILE = "fit_config.yaml"
CACHE_DIR = "cache"
PREVIEW_FILE = "samples.png"
#: items per cache file: what an interrupted preparation loses at most
CHUNK = 128


# ---- options -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureFit:
    """``scorer.fit`` of ``sd-features``: features of a labelled train split, then a head on them."""

    #: the diffusion backbone (a backbone spec); scoring uses the same one
    backbone: str | dict[str, Any]
    #: the labelled train split (a dataset spec), e.g. {name: shapes-world, split: train, n: 3000}
    dataset: str | dict[str, Any]
    #: use only its first ``limit`` images
    limit: int | None = None
    #: the timestep the images are noised to (the paper: 100)
    t: int = 100
    #: average-pool the feature map to pool x pool cells (None: flatten it whole)
    pool: int | None = None
    #: options of ``feature_head``: hidden (0: linear), drop
    head: dict[str, Any] = field(default_factory=dict)
    #: images per feature-extraction call
    batch_size: int = 64
    train: TrainOptions = field(default_factory=TrainOptions)

    def __post_init__(self) -> None:
        from dcbench.scorers.sd_features import feature_head

        feature_head(1, 2, **self.head)  # a bad head option fails now, not after the features are extracted


@dataclass(frozen=True)
class SyntheticFit:
    """``scorer.fit`` of ``synthetic-data``: images generated from the class prompts, then a timm classifier."""

    #: the diffusion backbone that generates the images (a backbone spec)
    backbone: str | dict[str, Any]
    images_per_class: int = 100
    num_inference_steps: int = 25
    guidance_scale: float = 3.0
    #: DDIM's eta (0: deterministic DDIM; 1: DDPM-like, fresh noise at every step)
    eta: float = 0.0
    #: images per sampling call
    batch_size: int = 32
    #: pixels per side of the classifier's input (default: the backbone's image size)
    image_size: int | None = None
    #: the timm classifier, trained from scratch: {name: ..., **timm.create_model options}
    model: dict[str, Any] = field(default_factory=lambda: {"name": "resnet10t"})
    train: TrainOptions = field(default_factory=TrainOptions)

    def __post_init__(self) -> None:
        from dcbench.scorers.timm_classifier import image_classifier

        if self.images_per_class < 1 or self.num_inference_steps < 1 or self.batch_size < 1:
            raise ValueError("images_per_class, num_inference_steps and batch_size must be >= 1")
        image_classifier(self.model, 2)  # a bad model fails now, not after the images are generated


@dataclass(frozen=True)
class SupervisedFit:
    """``scorer.fit`` of ``timm``: a timm classifier trained from scratch on a labelled train split.

    The discriminative baseline of Li et al. (2023, Table 4): the same images the class-conditional
    diffusion model was trained on, no extra data, no augmentation.
    """

    #: the labelled train split (a dataset spec), e.g. {name: digits, split: train}
    dataset: str | dict[str, Any]
    #: use only its first ``limit`` images
    limit: int | None = None
    #: pixels per side of the classifier's input (None: the images' own size)
    image_size: int | None = None
    #: 1 (grey) or 3 (RGB)
    image_channels: int = 3
    #: the timm classifier, trained from scratch: {name: ..., **timm.create_model options}
    model: dict[str, Any] = field(default_factory=lambda: {"name": "resnet10t"})
    train: TrainOptions = field(default_factory=TrainOptions)

    def __post_init__(self) -> None:
        from dcbench.scorers.timm_classifier import image_classifier

        if self.image_channels not in (1, 3):
            raise ValueError(f"image_channels must be 1 or 3, got {self.image_channels}")
        image_classifier({**self.model, "in_chans": self.image_channels}, 2)  # a bad model fails now


def _parse(cls: type, options: Mapping[str, Any], where: str) -> Any:
    """``cls(**options)`` with the config's errors said as such (unknown keys list the accepted ones)."""
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {options!r}")
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ConfigError(f"{where} got unknown option(s) {', '.join(unknown)}; it accepts: {', '.join(names)}")
    values = dict(options)
    if "train" in values:
        values["train"] = _parse(TrainOptions, values["train"] or {}, f"{where}.train")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


# ---- the task and the run directory ------------------------------------------------------------------
def task_labels(data: Mapping[str, Any]) -> LabelSet:
    """The classes and prompts of the config's task (``data``: dataset, prompts or templates)."""
    from dcbench.data.datamodule import ClassificationDataModule

    datamodule = ClassificationDataModule(**{k: data[k] for k in ("dataset", "prompts", "templates") if k in data})
    datamodule.setup("fit")
    return datamodule.labels


def _identity(config: Mapping[str, Any], labels: LabelSet) -> dict[str, Any]:
    """What decides the fitted baseline: not where predict loads it from, nor the scoring batch size."""
    scorer = {k: v for k, v in config["scorer"].items() if k not in ("checkpoint", "batch_size")}
    return {"seed": config["seed"], "scorer": scorer, "classes": list(labels.classes), "prompts": list(labels.prompts)}


def _open_run_dir(run: Path, config: Mapping[str, Any], identity: dict[str, Any], overwrite: bool) -> None:
    """Create the directory, or check that what is in it came from the same fit (``overwrite``: discard it)."""
    run.mkdir(parents=True, exist_ok=True)
    file = run / CONFIG_FILE
    if overwrite:
        for name in (CACHE_DIR, CHECKPOINT_DIR):
            shutil.rmtree(run / name, ignore_errors=True)
        for name in (CONFIG_FILE, RECORD_FILE, WEIGHTS_FILE, PREVIEW_FILE):
            (run / name).unlink(missing_ok=True)
    elif file.is_file():
        old = (yaml.safe_load(file.read_text()) or {}).get("identity", {})
        if old != identity:
            changed = sorted(k for k in identity if old.get(k) != identity[k])
            raise RunDirectoryError(f"{run} holds a fit with a different {', '.join(changed)} config; use another "
                                    "--run-dir, or pass --overwrite to discard it")
    file.write_text(yaml.safe_dump({"identity": identity, "config": dict(config)}, sort_keys=False))


def _device(trainer_options: Mapping[str, Any]) -> torch.device:
    """Where the backbone prepares the data: the GPU if the trainer may use one and there is one."""
    accelerator = str(trainer_options.get("accelerator", "auto"))
    return torch.device("cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu")


def cached(run: Path, name: str, n: int, compute: Callable[[int, int], dict[str, Tensor]], *,
           progress: bool = True) -> tuple[dict[str, Tensor], float]:
    """``compute(start, stop)`` for each chunk of ``CHUNK`` items not yet saved in ``run/cache``; all chunks joined.

    Also returns the seconds spent computing the chunks, this run and earlier ones together.
    """
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    directory = run / CACHE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    parts, seconds = [], 0.0
    with tqdm(total=n, desc=name, unit="img", disable=not progress) as bar:
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            file = directory / f"{name}-{start:07d}-{stop:07d}.safetensors"
            if file.is_file():
                tensors = load_file(file)
            else:
                began = time.perf_counter()
                tensors = compute(start, stop)
                tensors["seconds"] = torch.tensor([time.perf_counter() - began], dtype=torch.float64)
                tmp = file.with_suffix(".tmp")  # renamed when complete: a killed run leaves no torn chunk
                save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)
                tmp.replace(file)
            seconds += float(tensors.pop("seconds"))
            parts.append(tensors)
            bar.update(stop - start)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}, seconds


# ---- the two baselines' data -------------------------------------------------------------------------
class Prepared(NamedTuple):
    """A baseline's training examples, the record of how they were made, and its classifier's constructor."""

    inputs: Tensor
    targets: Tensor
    record: dict[str, Any]
    build: Callable[[], nn.Module]


def _backbone(spec: str | dict[str, Any], device: torch.device) -> Backbone:
    from dcbench.registry import BACKBONES

    return BACKBONES.build(spec).to(device)


def _train_split(spec: str | dict[str, Any], labels: LabelSet) -> Any:
    """The labelled train split, checked to have the task's classes in the task's order."""
    from dcbench.registry import DATASETS

    dataset = DATASETS.build(spec)
    if list(dataset.classes) != list(labels.classes):
        raise LabelSetError(f"the train split {spec} has classes {list(dataset.classes)[:3]}... and the task "
                            f"{list(labels.classes)[:3]}...: they must be the same, in the same order")
    return dataset


def prepare_features(labels: LabelSet, fit: FeatureFit, run: Path, seed: int, progress: bool,
                     device: torch.device) -> Prepared:
    """Mid-block features of the labelled train split (cached), and the head to train on them."""
    from dcbench.data.transforms import model_input_transform
    from dcbench.scorers.sd_features import MidBlockFeatures, feature_head

    dataset = _train_split(fit.dataset, labels)
    n = len(dataset) if fit.limit is None else min(fit.limit, len(dataset))
    backbone = _backbone(fit.backbone, device)
    transform = model_input_transform(backbone.image_size, backbone.image_channels)
    extract = MidBlockFeatures(backbone, fit.t, seed, fit.pool)

    def compute(start: int, stop: int) -> dict[str, Tensor]:
        loaded = [dataset.load(i) for i in range(start, stop)]
        images = torch.stack([transform(image) for image, _ in loaded])
        ids = [dataset.image_id(i) for i in range(start, stop)]
        with torch.inference_mode():
            features = [extract(images[s : s + fit.batch_size].to(device), ids[s : s + fit.batch_size]).cpu()
                        for s in range(0, len(ids), fit.batch_size)]
        return {"inputs": torch.cat(features), "targets": torch.tensor([label for _, label in loaded])}

    data, seconds = cached(run, "features", n, compute, progress=progress)
    dim = data["inputs"].shape[1]
    head = {"hidden": 256, "drop": 0.0, **fit.head}
    record = {"features": {"t": fit.t, "pool": fit.pool, "dim": dim, "dataset": fit.dataset, "n_images": n,
                           "nfe": n, "seconds": round(seconds, 2)},
              "head": head}
    return Prepared(data["inputs"], data["targets"], record, lambda: feature_head(dim, labels.num_classes, **head))


def _to_uint8(images: Tensor) -> Tensor:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def prepare_synthetic(labels: LabelSet, fit: SyntheticFit, run: Path, seed: int, progress: bool,
                      device: torch.device) -> Prepared:
    """``images_per_class`` generated images per class (cached as uint8), and the timm classifier to train.

    Image k is of class k mod C (so a partial cache covers every class), its prompt cycles through the
    class's prompts, and its noise comes from (seed, class, index) alone.
    """
    from torchvision.utils import save_image

    from dcbench.diffusion.sampling import generate
    from dcbench.scorers.base import image_seed
    from dcbench.scorers.timm_classifier import image_classifier

    backbone = _backbone(fit.backbone, device)
    size = fit.image_size or backbone.image_size
    if size is None:
        raise ConfigError("this backbone takes any image size: set scorer.fit.image_size")
    n_classes = labels.num_classes
    prompts = [[p for p, c in enumerate(labels.prompt_class) if c == k] for k in range(n_classes)]
    with torch.inference_mode():
        conds = backbone.encode_conditions(labels)
        uncond = backbone.null_condition() if fit.guidance_scale != 1 else None

    def compute(start: int, stop: int) -> dict[str, Tensor]:
        plan = [(k % n_classes, k // n_classes) for k in range(start, stop)]
        seeds = [image_seed(seed, f"synthetic-{c}-{j}") for c, j in plan]
        cond = conds[torch.tensor([prompts[c][j % len(prompts[c])] for c, j in plan], device=conds.device)]
        images = generate(backbone, cond, uncond, seeds=seeds, num_inference_steps=fit.num_inference_steps,
                          guidance_scale=fit.guidance_scale, eta=fit.eta, batch_size=fit.batch_size)
        if images.shape[-1] != size:
            images = F.interpolate(images, size=(size, size), mode="bicubic", antialias=True)
        return {"inputs": _to_uint8(images), "targets": torch.tensor([c for c, _ in plan])}

    n = n_classes * fit.images_per_class
    data, seconds = cached(run, "synthetic", n, compute, progress=progress)
    save_image(data["inputs"][:n_classes].float() / 255, run / PREVIEW_FILE, nrow=min(n_classes, 10))
    calls = 1 if uncond is None else 2
    model = {**fit.model, "in_chans": backbone.image_channels}
    generation = {"images_per_class": fit.images_per_class, "n_images": n, "prompts": list(labels.prompts),
                  "sampler": f"DDIM, eta {fit.eta}, trailing timesteps, x0 clipped to the backbone's x0_range",
                  "num_inference_steps": fit.num_inference_steps,
                  "guidance_scale": fit.guidance_scale, "nfe": n * fit.num_inference_steps * calls,
                  "seconds": round(seconds, 2)}
    record = {"image_size": size, "image_channels": backbone.image_channels, "model": model, "generation": generation}
    return Prepared(data["inputs"], data["targets"], record, lambda: image_classifier(model, n_classes))


def prepare_images(labels: LabelSet, fit: SupervisedFit, run: Path, seed: int, progress: bool,
                   device: torch.device) -> Prepared:
    """The labelled train split's images (cached as uint8), and the timm classifier to train on them."""
    from dcbench.data.transforms import model_input_transform
    from dcbench.scorers.timm_classifier import image_classifier

    dataset = _train_split(fit.dataset, labels)
    n = len(dataset) if fit.limit is None else min(fit.limit, len(dataset))
    transform = model_input_transform(fit.image_size, fit.image_channels)

    def compute(start: int, stop: int) -> dict[str, Tensor]:
        loaded = [dataset.load(i) for i in range(start, stop)]
        images = torch.stack([transform(image) for image, _ in loaded])
        return {"inputs": _to_uint8(images), "targets": torch.tensor([label for _, label in loaded])}

    data, seconds = cached(run, "images", n, compute, progress=progress)
    size = fit.image_size or int(data["inputs"].shape[-1])
    model = {**fit.model, "in_chans": fit.image_channels}
    record = {"image_size": size, "image_channels": fit.image_channels, "model": model,
              "parameters": sum(p.numel() for p in image_classifier(model, labels.num_classes).parameters()),
              "data": {"dataset": fit.dataset, "n_images": n, "seconds": round(seconds, 2)}}
    return Prepared(data["inputs"], data["targets"], record, lambda: image_classifier(model, labels.num_classes))


FITS: dict[str, tuple[type, Callable[..., Prepared]]] = {
    "sd-features": (FeatureFit, prepare_features),
    "synthetic-data": (SyntheticFit, prepare_synthetic),
    "timm": (SupervisedFit, prepare_images),
}


# ---- the command -------------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("dcbench", "torch", "timm", "diffusers", "lightning")}


def fit_baseline(config: Mapping[str, Any], run_dir: str | Path, *, logger: Any = False, overwrite: bool = False,
                 callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Fit the config's baseline into ``run_dir`` (resuming what is there); returns its ``baseline.json`` record.

    ``logger`` is a Lightning logger (or False) for the training metrics; ``callbacks`` go to the Trainer.
    """
    scorer = config["scorer"] if isinstance(config["scorer"], Mapping) else {"name": config["scorer"]}
    kind = scorer.get("name")
    if kind not in FITS:
        raise ConfigError(f"fit-baseline fits the scorers {', '.join(FITS)}; this config's scorer is {kind!r}")
    options_cls, prepare = FITS[kind]
    if (scorer.get("fit") or {}).get(FAMILY_KEY) is not None:
        raise ConfigError(f"this config fits a family (scorer.fit.{FAMILY_KEY}): use fit_family")
    fit = _parse(options_cls, scorer.get("fit") or {}, f"scorer.fit of {kind}")
    seed = int(config.get("seed", 0))
    labels = task_labels(config["data"])
    run = Path(run_dir)
    _open_run_dir(run, config, _identity(config, labels), overwrite)
    if (run / RECORD_FILE).is_file() and (run / WEIGHTS_FILE).is_file():
        print(f"dcbench: {run} already holds this fitted baseline (pass --overwrite to fit it again)", file=sys.stderr)
        return json.loads((run / RECORD_FILE).read_text())

    trainer_options = dict(config.get("trainer") or {})
    progress = bool(trainer_options.get("enable_progress_bar", True))
    try:  # a diffusion backbone lives only inside prepare: the classifier trains on the prepared tensors alone
        prepared = prepare(labels, fit, run, seed, progress, _device(trainer_options))
    except NotImplementedError as err:  # e.g. no null condition for guidance or features
        raise ConfigError(f"{kind} cannot be fitted with this backbone: {err}") from err
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

    L.seed_everything(seed, verbose=False)  # here, so that the initial weights do not depend on the cache
    model = prepared.build()
    training = train_classifier(model, prepared.inputs, prepared.targets, fit.train, run, seed=seed,
                                trainer_options=trainer_options, logger=logger, callbacks=callbacks)
    record = {"kind": kind, "classes": list(labels.classes), "backbone": getattr(fit, "backbone", None),
              **prepared.record,
              "training": training, "versions": _versions(), "config": dict(config)}
    save_baseline(run, model, record)
    if logger:
        logger.log_metrics({f"final/{k}": v for k in ("train_accuracy", "val_accuracy")
                            if (v := training[k]) is not None})
        logger.finalize("success")
    return record


FAMILY_KEY = "family"
FAMILY_FILE = "family.json"


def family_members(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The members of a family config: ``scorer.fit.family`` maps a name to options merged into ``scorer.fit``.

    A family fits several classifiers that differ in size or training length (the discriminative baselines
    whose ID and OOD accuracies trace the line of effective robustness). Empty for a single fit.
    """
    from dcbench.config import merge

    scorer = config["scorer"] if isinstance(config["scorer"], Mapping) else {"name": config["scorer"]}
    fit = dict(scorer.get("fit") or {})
    family = fit.pop(FAMILY_KEY, None)
    if family is None:
        return {}
    if not isinstance(family, Mapping) or not family:
        raise ConfigError(f"scorer.fit.{FAMILY_KEY} must map member names to options of scorer.fit, got {family!r}")
    members = {}
    for name, options in family.items():
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ConfigError(f"family member name {name!r}: it names a directory; use letters, digits, '-' and '_'")
        members[name] = {**config, "scorer": {**scorer, "fit": merge(fit, options or {})}}
    return members


def fit_family(config: Mapping[str, Any], run_dir: str | Path, *, only: Sequence[str] | None = None,
               overwrite: bool = False, logger_for: Callable[[str, Path], Any] | None = None) -> dict[str, Any]:
    """Fit every member of a family config into ``run_dir/<member>``; write and return ``run_dir/family.json``.

    Finished members are reused (a rerun fits only what is missing); ``only`` restricts to some members.
    """
    members = family_members(config)
    if only:
        unknown = sorted(set(only) - set(members))
        if unknown:
            raise ConfigError(f"no family member(s) {', '.join(unknown)}; the family has {', '.join(members)}")
        members = {k: v for k, v in members.items() if k in only}
    run = Path(run_dir)
    summary = json.loads((run / FAMILY_FILE).read_text()) if (run / FAMILY_FILE).is_file() else {"members": {}}
    for i, (name, member) in enumerate(members.items(), 1):
        print(f"dcbench fit-baseline: [{i}/{len(members)}] {name}", file=sys.stderr)
        logger = logger_for(name, run / name) if logger_for else False
        record = fit_baseline(member, run / name, logger=logger, overwrite=overwrite)
        training = record["training"]
        summary["members"][name] = {"model": record.get("model"), "parameters": record.get("parameters"),
                                    "steps": training["steps"], "train_accuracy": training["train_accuracy"],
                                    "val_accuracy": training["val_accuracy"],
                                    "wall_seconds": training["wall_seconds"]}
        run.mkdir(parents=True, exist_ok=True)
        (run / FAMILY_FILE).write_text(json.dumps(summary, indent=2) + "\n")  # after each member: nothing lost
    return summary


def cmd_fit_baseline(args: Any, overrides: Sequence[str]) -> int:
    """``dcbench fit-baseline --config CFG --run-dir DIR [--only M,..] [--overwrite] [--section.key VALUE ...]``."""
    from dcbench import cli
    from dcbench.config import resolve

    config = resolve(args.config, overrides)
    run = Path(args.run_dir)
    if family_members(config):
        only = [m.strip() for m in args.only.split(",") if m.strip()] if args.only else None
        summary = fit_family(config, run, only=only, overwrite=args.overwrite,
                             logger_for=lambda name, path: cli._build_logger(config.get("logger"), path, config))
        print(f"dcbench: fitted {len(summary['members'])} family members in {run} ({run / FAMILY_FILE})")
        for name, member in summary["members"].items():
            print(f"  {name:<24} val_accuracy {member['val_accuracy']}  ({member['wall_seconds']} s)")
        return 0
    if args.only:
        raise ConfigError("--only picks members of a family config (scorer.fit.family); this config has none")
    record = fit_baseline(config, run, logger=cli._build_logger(config.get("logger"), run, config),
                          overwrite=args.overwrite)
    training = record["training"]
    print(f"dcbench: fitted {record['kind']} baseline in {run} (score with --scorer.checkpoint {run})\n"
          f"  train_accuracy     {training['train_accuracy']}\n  val_accuracy       {training['val_accuracy']}\n"
          f"  wall_seconds       {training['wall_seconds']} (training, this run)")
    return 0
