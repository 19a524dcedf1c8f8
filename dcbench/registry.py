"""One registry type for every pluggable part of dcbench.

Built-in components register themselves with a decorator on a small factory (the timm pattern)::

    @BACKBONES.register("unet-class")
    def unet_class(pretrained: str, torch_dtype: str = "float32") -> Backbone: ...

Third-party packages register through Python entry points, one group per registry
(``dcbench.backbones``, ``dcbench.scorers``, ``dcbench.datasets``, ``dcbench.samplers``,
``dcbench.pruning``, ``dcbench.shifts``). An entry point may name a factory (it is registered under the entry point's
name) or a module (imported for the side effect of its ``@register`` decorators).
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["ALL", "BACKBONES", "DATASETS", "PRUNING", "SAMPLERS", "SCORERS", "SHIFTS", "Registry", "RegistryError"]


class RegistryError(KeyError):
    """An unknown name, or arguments a factory does not take."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """Names to factories, filled by ``@register`` and by the entry-point group ``group``."""

    def __init__(self, kind: str, group: str, builtins: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self.builtins = builtins  # module whose import registers dcbench's own components
        self._factories: dict[str, Callable[..., T]] = {}
        self._origin: dict[str, str] = {}
        self._plugins_loaded = False

    def register(self, name: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator that registers a factory (function or class) under ``name``."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            key = name or factory.__name__.replace("_", "-")
            if key in self._factories and self._factories[key] is not factory:
                raise RegistryError(f"{self.kind} {key!r} is registered twice "
                                    f"({self._origin[key]} and {factory.__module__})")
            self._factories[key] = factory
            self._origin[key] = factory.__module__
            return factory

        return decorator

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        if self.builtins:
            importlib.import_module(self.builtins)
        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
            except Exception as err:  # a broken plugin must not take the built-ins down with it
                raise RegistryError(f"plugin {ep.value!r} (entry point {ep.name!r} in group {self.group!r}) "
                                    f"failed to import: {err}. Fix or uninstall that package.") from err
            if not callable(obj):
                continue  # a module: importing it ran its @register decorators
            if ep.name in self._factories:
                warnings.warn(f"plugin entry point {ep.name!r} ({ep.value}) is ignored: dcbench already has a "
                              f"{self.kind} of that name (from {self._origin[ep.name]}). Rename the entry point.",
                              stacklevel=2)
                continue
            self.register(ep.name)(obj)

    def names(self) -> list[str]:
        """All registered names, plugins included, sorted."""
        self._load_plugins()
        return sorted(self._factories)

    def origin(self, name: str) -> str:
        """The module a factory was registered from."""
        self.get(name)
        return self._origin[name]

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``; a clear error naming the alternatives if none."""
        self._load_plugins()
        if name not in self._factories:
            known = ", ".join(self.names()) or "(none)"
            raise RegistryError(
                f"unknown {self.kind} {name!r}. Registered {self.kind}s: {known}. "
                f"Check the spelling, or install the plugin that provides it "
                f"(it must declare an entry point in group {self.group!r}); `dcbench list` shows what is registered."
            )
        return self._factories[name]

    def build(self, spec: str | Mapping[str, Any], **extra: Any) -> T:
        """Build from ``"name"`` or ``{"name": ..., **kwargs}``; ``extra`` fills arguments the spec leaves out."""
        if isinstance(spec, str):
            name, kwargs = spec, {}
        elif isinstance(spec, Mapping) and "name" in spec:
            kwargs = {k: v for k, v in spec.items() if k != "name"}
            name = spec["name"]
        else:
            raise RegistryError(f"a {self.kind} is given as a name or a mapping with a 'name' key, got {spec!r}")
        factory = self.get(name)
        _check_kwargs(factory, kwargs, f"{self.kind} {name!r}")
        params = inspect.signature(factory).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for key, value in extra.items():
            if key not in kwargs and (takes_any or key in params):
                kwargs[key] = value
        try:
            return factory(**kwargs)
        except ValueError as err:  # a factory rejecting its options: the config's fault, said as such
            from dcbench.config import ConfigError

            raise ConfigError(f"{self.kind} {name!r}: {err}") from err


def _check_kwargs(factory: Callable[..., Any], kwargs: Mapping[str, Any], what: str) -> None:
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        accepted = ", ".join(p for p in params if p != "self") or "(none)"
        raise RegistryError(f"{what} got unknown option(s) {', '.join(unknown)}; it accepts: {accepted}")


BACKBONES: Registry[Any] = Registry("backbone", "dcbench.backbones", "dcbench.backbones")
SCORERS: Registry[Any] = Registry("scorer", "dcbench.scorers", "dcbench.scorers")
DATASETS: Registry[Any] = Registry("dataset", "dcbench.datasets", "dcbench.data")
SAMPLERS: Registry[Any] = Registry("timestep sampler", "dcbench.samplers", "dcbench.diffusion.samplers")
PRUNING: Registry[Any] = Registry("pruning schedule", "dcbench.pruning", "dcbench.diffusion.pruning")
SHIFTS: Registry[Any] = Registry("distribution shift", "dcbench.shifts", "dcbench.data.shifts")
ALL: dict[str, Registry[Any]] = {
    "backbones": BACKBONES,
    "scorers": SCORERS,
    "datasets": DATASETS,
    "samplers": SAMPLERS,
    "pruning": PRUNING,
    "shifts": SHIFTS,
}
