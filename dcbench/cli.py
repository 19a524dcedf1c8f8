"""The ``dcbench`` command: ``predict``, ``list`` and ``train-embedded``."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["evaluate_embedded", "main", "run_predict"]

DEFAULT_RUN_DIR = "runs/default"



def _user_errors() -> tuple[type[BaseException], ...]:
    from dcbench.backbones.base import ModelNotFoundError
    from dcbench.config import ConfigError
    from dcbench.data.base import BadImageError, DatasetNotFoundError
    from dcbench.data.labels import LabelSetError
    from dcbench.registry import RegistryError
    from dcbench.writers import RunDirectoryError

    return (ConfigError, RegistryError, ModelNotFoundError, DatasetNotFoundError, BadImageError, LabelSetError,
            RunDirectoryError)


def _build_logger(spec: Any, run_dir: Path, config: dict[str, Any]) -> Any:
    """``none`` / ``csv`` / ``wandb`` (offline unless ``offline: false``: no account, no network).

    A wandb spec's ``run_name`` names the W&B run (default: the run directory's name); other options
    (``project``, ``group``, ``offline``, ...) go to ``WandbLogger``.
    """
    from dcbench.config import ConfigError

    if spec in (None, False, "none"):
        return False
    options = {"name": spec} if isinstance(spec, str) else dict(spec)
    kind = options.pop("name", None)
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(run_dir), name="logs", **options)
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        options.setdefault("project", "dcbench")
        options.setdefault("offline", True)
        options.setdefault("name", options.pop("run_name", run_dir.name))
        return WandbLogger(save_dir=str(run_dir), config=config, **options)
    raise ConfigError(f"unknown logger {kind!r}; use none, csv or wandb")


def _build_trainer(trainer_options: dict[str, Any], callbacks: list[Any], logger: Any) -> Any:
    import lightning as L

    from dcbench.config import ConfigError

    try:
        return L.Trainer(**trainer_options, callbacks=callbacks, logger=logger, enable_checkpointing=False,
                         enable_model_summary=False)
    except TypeError as err:
        raise ConfigError(f"bad trainer option: {err}. The trainer section takes lightning.Trainer arguments "
                          "(accelerator, devices, strategy, precision, num_nodes, ...)") from err


def run_predict(config: dict[str, Any], run_dir: str | Path, overwrite: bool = False) -> dict[str, Any] | None:
    """Score every item of the config's dataset into ``run_dir``; returns the metrics (rank 0).

    ``task: classification`` scores images against the label set; ``task: matching`` scores image-text
    pairs (:mod:`dcbench.matching`).
    """
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from dcbench.config import result_identity
    from dcbench.registry import SCORERS
    from dcbench.writers import PredictionWriter, RunDirectory

    run = RunDirectory(run_dir)
    if rank_zero_only.rank == 0:
        run.prepare(config, result_identity, overwrite)
    done = run.records()

    scorer = SCORERS.build(config["scorer"], seed=config["seed"])
    matching = config.get("task", "classification") == "matching"
    build = _matching if matching else _classification
    module, datamodule, progress = build(scorer, config, done)
    trainer_options = dict(config.get("trainer") or {})
    callbacks: list[Any] = [PredictionWriter(run)]
    if trainer_options.get("enable_progress_bar", True):
        callbacks.append(progress)
    logger = _build_logger(config.get("logger"), run.path, config)
    trainer = _build_trainer(trainer_options, callbacks, logger)
    with warnings.catch_warnings():
        # A resumed run with nothing left is fine: say so below instead of Lightning's warning.
        warnings.filterwarnings("ignore", message=r"Total length of `DataLoader` across ranks is zero")
        trainer.predict(module, datamodule=datamodule, return_predictions=False)

    if not trainer.is_global_zero:
        return None
    if datamodule.dataset is None:  # Lightning skipped setup
        datamodule.setup("predict")
    if not datamodule.indices:
        print(f"dcbench: all {len(datamodule.all_ids)} items were already scored in {run.path}", file=sys.stderr)
    records = run.records()
    ordered = [records[i] for i in datamodule.all_ids if i in records]
    metrics = _metrics(ordered, datamodule, matching)
    run.write_metrics(metrics)
    if logger:
        logger.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        logger.finalize("success")
    return metrics


def _data_options(scorer: Any, config: dict[str, Any], done: dict[str, Any]) -> dict[str, Any]:
    data = dict(config["data"])
    data.setdefault("image_size", scorer.image_size)
    data.setdefault("image_channels", scorer.image_channels)
    return {**data, "skip_ids": done}


def _classification(scorer: Any, config: dict[str, Any], done: dict[str, Any]) -> tuple[Any, Any, Any]:
    from dcbench.data.datamodule import ClassificationDataModule
    from dcbench.progress import AccuracyProgressBar, is_correct

    datamodule = ClassificationDataModule(**_data_options(scorer, config, done))
    progress = AccuracyProgressBar(done=len(done), correct=sum(is_correct(r) for r in done.values()))
    return scorer, datamodule, progress


def _matching(scorer: Any, config: dict[str, Any], done: dict[str, Any]) -> tuple[Any, Any, Any]:
    from dcbench.config import ConfigError
    from dcbench.data.pairs import MatchingDataModule
    from dcbench.matching import MatchingTask
    from dcbench.progress import AccuracyProgressBar

    def group(record: dict[str, Any]) -> bool:
        return bool(record["group"])

    try:
        module = MatchingTask(scorer)
    except TypeError as err:
        raise ConfigError(str(err)) from err
    datamodule = MatchingDataModule(**_data_options(scorer, config, done))
    progress = AccuracyProgressBar(done=len(done), correct=sum(group(r) for r in done.values()), hit=group,
                                   name="group")
    return module, datamodule, progress


def _metrics(records: list[dict[str, Any]], datamodule: Any, matching: bool) -> dict[str, Any]:
    from dcbench.matching import matching_metrics
    from dcbench.metrics import classification_metrics

    if matching:
        return matching_metrics(records)
    held_out = getattr(datamodule.dataset, "held_out_classes", None)
    metrics = classification_metrics(records, datamodule.labels.num_classes, held_out)
    metrics["classes"] = list(datamodule.labels.classes)
    return metrics


def _summary(metrics: dict[str, Any], run_dir: Path) -> str:
    keys = ["n_images", "top1", "top5", "mean_per_class", "top1_held_out", "ece", "nfe_per_image",
            "seconds_per_image", "n_pairs", "text_score", "image_score", "group_score", "nfe_per_pair",
            "seconds_per_pair"]
    rows = [f"  {k:<18} {metrics[k]:.4g}" for k in keys if k in metrics]
    return "\n".join([f"dcbench: results in {run_dir}/metrics.json", *rows])


def _cmd_predict(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    from dcbench.config import resolve

    config = resolve(args.config, overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config, sort_keys=False), end="")
        return 0
    run_dir = Path(args.run_dir)
    metrics = run_predict(config, run_dir, overwrite=args.overwrite)
    if metrics is not None:
        print(_summary(metrics, run_dir))
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from dcbench.calibration import calibrate_run

    result = calibrate_run(args.run_dir)
    print(f"dcbench: on {result['n_images']} images, temperature {result['temperature']:.4g} "
          f"(NLL {result['nll']:.4f}, ECE {result['ece']:.4f}): set scorer.temperature to it")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from dcbench.registry import ALL

    kinds = [args.kind] if args.kind else list(ALL)
    for kind in kinds:
        registry = ALL[kind]
        print(f"{kind}:")
        for name in registry.names():
            factory = registry.get(name)
            doc = (factory.__doc__ or "").strip().splitlines()
            print(f"  {name:<22} {doc[0] if doc else ''}  [{registry.origin(name)}]")
    return 0


def evaluate_embedded(model_dir: str | Path) -> dict[str, Any]:
    """Score the default task with the model in ``model_dir``; store the result in its ``dcbench.json``."""
    import tempfile

    from dcbench.config import resolve

    config = resolve(None, ["--scorer.backbone.pretrained", str(model_dir), "--logger", "none"])
    with tempfile.TemporaryDirectory() as run_dir:
        metrics = run_predict(config, run_dir)
    keys = ("n_images", "top1", "mean_per_class", "ece", "nfe_per_image", "seconds_per_image")
    file = Path(model_dir) / "dcbench.json"
    record = json.loads(file.read_text())
    record["evaluation"] = {"command": "dcbench predict (the default config)",
                            **{k: round(metrics[k], 4) for k in keys}}
    file.write_text(json.dumps(record, indent=2) + "\n")
    return record


def _cmd_train_embedded(args: argparse.Namespace) -> int:
    if args.name in ("digits", "digits-lv"):
        from dcbench.training import train_digits

        train_digits(args.out, steps=args.steps or 6000, batch_size=args.batch_size or 128, seed=args.seed,
                     learned_variance=args.name == "digits-lv")
        print(json.dumps(evaluate_embedded(args.out), indent=2))
        return 0
    from dcbench.training.world import train_world_clip, train_world_unet

    train = train_world_clip if args.name == "shapes-world-clip" else train_world_unet
    options = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size)) if v}
    print(json.dumps(train(args.out, seed=args.seed, **options), indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    from dcbench import __version__
    from dcbench.registry import ALL

    parser = argparse.ArgumentParser(prog="dcbench", description="Diffusion models as image classifiers.")
    parser.add_argument("--version", action="version", version=f"dcbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="score a dataset with a scorer (Lightning Trainer.predict)",
                       description="Any other --section.key VALUE overrides the config, e.g. "
                                   "--scorer.pruning.n_samples 20 --trainer.devices 2 --data.limit 100.")
    p.add_argument("--config", help="YAML config (default: the embedded digits model on the digits test split)")
    p.add_argument("--run-dir", default=DEFAULT_RUN_DIR,
                   help=f"where records and metrics go (default {DEFAULT_RUN_DIR}); rerunning resumes")
    p.add_argument("--overwrite", action="store_true", help="discard records already in the run directory")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")

    p = sub.add_parser("list", help="show registered backbones, scorers, datasets, samplers, pruning schedules, shifts")
    p.add_argument("kind", nargs="?", choices=list(ALL))

    p = sub.add_parser("train-embedded", help="retrain a shipped embedded model from scratch (CPU)")
    p.add_argument("name", choices=["digits", "digits-lv", "shapes-world-clip", "shapes-world-unet"],
                   help="digits-lv: digits with learned variance (the vlb objectives); shapes-world-unet needs "
                        "OUT/clip from shapes-world-clip (it conditions on its text tower)")
    p.add_argument("--out", required=True, help="output directory (diffusers layout)")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the shipped model's)")
    p.add_argument("--batch-size", type=int, help="(default: the shipped model's)")
    p.add_argument("--seed", type=int, default=0)

    from dcbench.report import add_arguments

    p = sub.add_parser("report", help="run every scorer of a report config on every task; report.md, report.json",
                       description="Any other --section.key VALUE overrides the report config, e.g. "
                                   "--trainer.accelerator cpu --tasks.zero-shot.data.batch_size 10.")
    add_arguments(p)

    from dcbench.bench import add_arguments as add_bench_arguments

    p = sub.add_parser("bench", help="accuracy vs NFE, cost vs classes, wall time vs the reference loop; bench.json",
                       description="Finished parts in the run directory are reused; delete them to remeasure.")
    add_bench_arguments(p)

    p = sub.add_parser("calibrate", help="fit the Diffusion Classifier's temperature on a finished run (NLL)",
                       description="Temperature changes probabilities (ECE), never predictions. Calibrate on a "
                                   "run over a train or validation split, then set scorer.temperature.")
    p.add_argument("--run-dir", required=True, help="a finished `dcbench predict` classification run")

    p = sub.add_parser("fit-baseline", help="fit the sd-features, synthetic-data or timm baselines (Trainer.fit)",
                       description="Any other --section.key VALUE overrides the config, e.g. "
                                   "--scorer.fit.train.steps 500. Rerunning with the same run directory resumes.")
    p.add_argument("--config", required=True, help="e.g. configs/embedded/baselines/sd_features.yaml")
    p.add_argument("--run-dir", required=True, help="where the fit goes (then: --scorer.checkpoint DIR to predict)")
    p.add_argument("--only", help="a family config (scorer.fit.family): fit only these comma-separated members")
    p.add_argument("--overwrite", action="store_true", help="discard the cache and checkpoints in the run directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Lightning 2.6 on torch 2.14 warns about its own use of a deprecated torch API on every run.
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated", category=Warning)
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("predict", "report", "fit-baseline"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "predict":
            return _cmd_predict(args, rest)
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "report":
            from dcbench.report import cmd_report

            return cmd_report(args, rest)
        if args.command == "bench":
            from dcbench.bench import cmd_bench

            return cmd_bench(args)
        if args.command == "calibrate":
            return _cmd_calibrate(args)
        if args.command == "fit-baseline":
            from dcbench.baselines.fit import cmd_fit_baseline

            return cmd_fit_baseline(args, rest)
        return _cmd_train_embedded(args)
    except _user_errors() as err:
        print(f"dcbench: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
