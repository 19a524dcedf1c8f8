from pathlib import Path

import pytest

from dcbench.config import DEFAULT_CONFIG, ConfigError, load_config, merge, parse_overrides, resolve, result_identity

ROOT = Path(__file__).resolve().parents[1]


def test_default_is_the_embedded_digits_config():
    assert load_config(ROOT / "configs" / "embedded" / "digits.yaml") == DEFAULT_CONFIG


def test_overrides_are_typed_and_nested():
    args = ["--trainer.devices", "2", "--scorer.pruning.n_samples=[5, 10]", "--data.limit", "null"]
    assert parse_overrides(args) == {
        "trainer": {"devices": 2}, "scorer": {"pruning": {"n_samples": [5, 10]}}, "data": {"limit": None}}
    with pytest.raises(ConfigError, match=r"has no value"):
        parse_overrides(["--seed"])
    with pytest.raises(ConfigError, match=r"unexpected argument"):
        parse_overrides(["seed", "1"])


def test_merge_rules_for_components():
    base = {"scorer": {"sampler": "even", "backbone": {"name": "a", "pretrained": "x"}}}
    assert merge(base, {"scorer": {"sampler": {"center": 3}}})["scorer"]["sampler"] == {"name": "even", "center": 3}
    assert merge(base, {"scorer": {"backbone": {"pretrained": "y"}}})["scorer"]["backbone"] == {
        "name": "a", "pretrained": "y"}
    assert merge(base, {"scorer": {"backbone": {"name": "b"}}})["scorer"]["backbone"] == {"name": "b"}


def test_resolve_checks_sections(tmp_path):
    assert resolve(None, ["--seed", "3"])["seed"] == 3
    with pytest.raises(ConfigError, match=r"unknown config section"):
        resolve(None, ["--sede", "3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match=r"must hold a mapping"):
        resolve(bad)
    bad.write_text("scorer: {name: x\n")
    with pytest.raises(ConfigError, match=r"not valid YAML"):
        resolve(bad)
    with pytest.raises(ConfigError, match=r"does not exist"):
        resolve(tmp_path / "missing.yaml")


def test_result_identity_ignores_speed_knobs():
    a = resolve(None)
    b = resolve(None, ["--scorer.batch_size", "7", "--data.batch_size", "3", "--trainer.devices", "2"])
    assert result_identity(a) == result_identity(b)
    assert result_identity(a) != result_identity(resolve(None, ["--seed", "1"]))
