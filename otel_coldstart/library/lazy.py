"""Lazy loading: move an import's cost from start-up to the first moment it is needed.

No OpenTelemetry here; ``service_tracing.py`` turns each real load into a ``coldstart.lazy_load``
span, parented wherever the load happened (a service init, a request after ready...).

- ``LazyLoader().load("pkg.mod")`` imports and returns a module; ``load("pkg.mod:attr.sub")``
  returns an attribute of it. Successful loads are cached; a failing one raises the original
  exception (``ImportError``, ``AttributeError``...) and is tried again next time, as Python
  itself retries a failed import.
- ``lazy_module("pkg.mod")`` returns a proxy whose real import happens at its first attribute
  access, so ``np = lazy_module("numpy")`` at module level costs nothing until ``np.array`` runs.
"""

from __future__ import annotations

import functools
from importlib import import_module

from otel_coldstart.library import service_hooks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["LazyLoader", "LazyModule", "lazy_module", "load"]


def _check_target(target: str) -> None:
    if not isinstance(target, str):
        raise TypeError(f"a lazy-load target must be a string, not {type(target).__name__}")
    module, sep, attribute = target.partition(":")
    if not module or (sep and (not attribute or "" in attribute.split("."))):
        raise ValueError(f"bad lazy-load target {target!r}: use 'package.module' or 'package.module:attr'")


class LazyLoader:
    """Loads modules and attributes by dotted name on first request, and caches them."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def load(self, target: str) -> Any:
        """The module (``"pkg.mod"``) or attribute (``"pkg.mod:attr.sub"``), imported if needed."""
        try:
            return self._cache[target]
        except KeyError:
            pass
        _check_target(target)
        # No lock: two threads racing here both import, and Python's import lock makes them get
        # the same module. A lock of ours held across an import could deadlock with the import
        # lock of a module whose body lazily loads something too.
        hooks = service_hooks.installed
        value = (
            self._load_target(target)
            if hooks is None
            else hooks.lazy_load(target, functools.partial(self._load_target, target))
        )
        return self._cache.setdefault(target, value)

    def _load_target(self, target: str) -> Any:
        """The actual import (seen by the ``lazy_load`` hook); only called on a cache miss."""
        module_name, _, attribute = target.partition(":")
        value = import_module(module_name)
        if attribute:
            for part in attribute.split("."):
                value = getattr(value, part)
        return value

    def is_loaded(self, target: str) -> bool:
        return target in self._cache

    def module(self, name: str) -> LazyModule:
        """A proxy for module ``name`` that imports it at first attribute access."""
        return LazyModule(name, self)


class LazyModule:
    """Stands in for a module until first used; then forwards every attribute access to it."""

    __slots__ = ("_lazy_loaded", "_lazy_loader", "_lazy_target")

    def __init__(self, target: str, loader: LazyLoader | None = None) -> None:
        _check_target(target)
        object.__setattr__(self, "_lazy_target", target)
        object.__setattr__(self, "_lazy_loader", loader if loader is not None else _default)
        object.__setattr__(self, "_lazy_loaded", None)

    def _lazy_resolve(self) -> Any:
        loaded = object.__getattribute__(self, "_lazy_loaded")
        if loaded is None:
            target = object.__getattribute__(self, "_lazy_target")
            loaded = object.__getattribute__(self, "_lazy_loader").load(target)
            object.__setattr__(self, "_lazy_loaded", loaded)
        return loaded

    def __getattr__(self, name: str) -> Any:
        # Only called for names the proxy itself lacks, i.e. everything of the real module.
        return getattr(self._lazy_resolve(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._lazy_resolve(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._lazy_resolve(), name)

    def __dir__(self) -> list[str]:
        return dir(self._lazy_resolve())

    def __repr__(self) -> str:
        target = object.__getattribute__(self, "_lazy_target")
        loaded = object.__getattribute__(self, "_lazy_loaded")
        return f"<lazy module {target!r} ({'loaded' if loaded is not None else 'not loaded'})>"


#: The loader behind ``lazy_module()`` and ``load()`` when none is given.
_default = LazyLoader()


def lazy_module(name: str, loader: LazyLoader | None = None) -> Any:
    """A proxy for module (or ``"module:attr"``) ``name``, imported at first attribute access."""
    return LazyModule(name, loader)


def load(target: str) -> Any:
    """Load ``target`` through the default loader (see ``LazyLoader.load``)."""
    return _default.load(target)
