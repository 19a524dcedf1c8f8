"""Run configs as data: YAML files, dotted command-line overrides, and the built-in default.

A config has these sections::

    seed: 0                     # every random choice derives from it (and the image id)
    task: classification        # or matching: image-text pairs (Winoground's text/image/group scores)
    scorer: {name: ..., ...}    # a registered scorer and its options (backbone, sampler, pruning, ...)
    data: {dataset: {name: ...}, batch_size: ..., prompts / templates, limit, num_workers}
    trainer: {...}              # lightning.Trainer arguments: accelerator, devices, strategy, precision
    logger: none | csv | wandb  # or {name: wandb, project: ..., offline: true}
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULT_CONFIG", "ConfigError", "load_config", "merge", "parse_overrides", "resolve", "result_identity"]

SECTIONS = ("seed", "task", "scorer", "data", "trainer", "logger")
TASKS = ("classification", "matching")

# The embedded default (`dcbench predict` with no --config); equal to configs/embedded/digits.yaml.
DEFAULT_CONFIG: dict[str, Any] = {
    "seed": 0,
    "scorer": {
        "name": "diffusion-classifier",
        "backbone": {"name": "unet-class", "pretrained": "embedded:digits"},
        "sampler": {"name": "even"},
        "pruning": {"name": "none", "n_samples": 10},
        "loss": "l2",
        "n_trials": 1,
        "temperature": 0.01,
        "batch_size": 500,
    },
    "data": {"dataset": {"name": "digits", "split": "test"}, "batch_size": 50, "num_workers": 0},
    "trainer": {"accelerator": "auto", "devices": 1, "precision": "32-true"},
    "logger": "csv",
}


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says which and why."""


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file (a mapping of the sections above)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping with sections {', '.join(SECTIONS)}")
    return data


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in ``override`` replaces.

    A component written as a bare name (``sampler: even``) that receives options becomes
    ``{name: even, **options}``; a component whose ``name`` changes is replaced whole, since the old
    component's options need not apply to the new one.
    """
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), str) and "name" not in value:
            out[key] = {"name": out[key]}  # a component given by bare name gets options: keep the name
        old = out.get(key)
        both_mappings = isinstance(value, Mapping) and isinstance(old, Mapping)
        if both_mappings and value.get("name", old.get("name")) != old.get("name"):
            out[key] = copy.deepcopy(dict(value))  # another component: the old one's options do not apply
        elif both_mappings:
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """``--scorer.pruning.n_samples 20`` or ``--trainer.devices=2`` -> nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    items = list(args)
    while items:
        arg = items.pop(0)
        if not arg.startswith("--") or len(arg) < 3:
            raise ConfigError(f"unexpected argument {arg!r}; overrides look like --section.key value")
        key, sep, raw = arg[2:].partition("=")
        if not sep:
            if not items:
                raise ConfigError(f"override --{key} has no value")
            raw = items.pop(0)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"cannot parse the value of --{key}: {err}") from err
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override --{key} conflicts with another override")
        node[parts[-1]] = value
    return out


def resolve(config_file: str | Path | None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The config a run uses: the file (or the default), then the overrides; sections checked."""
    base = load_config(config_file) if config_file is not None else DEFAULT_CONFIG
    config = merge(base, parse_overrides(overrides))
    unknown = sorted(set(config) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown config section(s) {', '.join(unknown)}; sections are {', '.join(SECTIONS)}")
    for section in ("scorer", "data"):
        if not isinstance(config.get(section), dict):
            raise ConfigError(f"the config needs a `{section}` mapping")
    if "dataset" not in config["data"]:
        raise ConfigError("the config needs data.dataset (e.g. {name: digits})")
    config.setdefault("seed", 0)
    config.setdefault("task", "classification")
    if config["task"] not in TASKS:
        raise ConfigError(f"unknown task {config['task']!r}; tasks are {', '.join(TASKS)}")
    config.setdefault("trainer", {})
    config.setdefault("logger", "none")
    return config


def result_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a config that decide the records (batch sizes, devices and logging do not)."""
    scorer = {k: v for k, v in config.get("scorer", {}).items() if k != "batch_size"}
    data = {k: config.get("data", {}).get(k) for k in ("dataset", "prompts", "templates")}
    return {"seed": config.get("seed"), "task": config.get("task", "classification"), "scorer": scorer, "data": data}
