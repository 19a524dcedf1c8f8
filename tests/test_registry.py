from importlib.metadata import EntryPoint

import pytest

import dcbench.registry as registry_module
from dcbench.registry import ALL, BACKBONES, Registry, RegistryError


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(RegistryError) as err:
        BACKBONES.get("stable-diffusoin")
    message = str(err.value)
    assert "unknown backbone 'stable-diffusoin'" in message
    assert "stable-diffusion" in message and "unet-class" in message and "dcbench list" in message


def test_build_checks_options_and_fills_extras():
    reg: Registry = Registry("widget", "dcbench.test-widgets")

    @reg.register("box")
    def box(size: int = 1, seed: int = 0) -> tuple[int, int]:
        return size, seed

    assert reg.build("box") == (1, 0)
    assert reg.build({"name": "box", "size": 3}, seed=7) == (3, 7)
    assert reg.build({"name": "box", "seed": 1}, seed=7) == (1, 1)  # the spec wins over extras
    with pytest.raises(RegistryError, match=r"unknown option.*colour.*accepts: size, seed"):
        reg.build({"name": "box", "colour": "red"})
    with pytest.raises(RegistryError, match=r"mapping with a 'name'"):
        reg.build({"size": 3})
    with pytest.raises(RegistryError, match=r"registered twice"):
        reg.register("box")(lambda: None)


def test_entry_points_register_plugins(monkeypatch):
    reg: Registry = Registry("widget", "dcbench.test-widgets")
    point = EntryPoint(name="json-widget", value="json:dumps", group="dcbench.test-widgets")
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [point] if group == reg.group else [])
    assert "json-widget" in reg.names()
    assert reg.origin("json-widget") == "json"


def test_broken_plugin_is_named(monkeypatch):
    reg: Registry = Registry("widget", "dcbench.test-widgets")
    point = EntryPoint(name="bad", value="no_such_module_xyz:thing", group="dcbench.test-widgets")
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [point])
    with pytest.raises(RegistryError, match=r"no_such_module_xyz.*failed to import"):
        reg.names()


def test_builtins_are_registered():
    assert {"stable-diffusion", "dit", "unet-class"} <= set(ALL["backbones"].names())
    assert {"none", "staged"} <= set(ALL["pruning"].names())
    assert {"even", "uniform", "fixed", "window"} <= set(ALL["samplers"].names())
    assert "diffusion-classifier" in ALL["scorers"].names()
    assert {"digits", "imagefolder", "cifar10", "imagenet"} <= set(ALL["datasets"].names())


def test_plugin_with_a_taken_name_is_ignored_with_a_warning(monkeypatch):
    reg: Registry = Registry("widget", "dcbench.test-widgets")
    reg.register("box")(lambda: "built-in")
    point = EntryPoint(name="box", value="json:dumps", group="dcbench.test-widgets")
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [point])
    with pytest.warns(UserWarning, match=r"'box' \(json:dumps\) is ignored"):
        assert reg.build("box") == "built-in"
