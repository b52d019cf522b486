"""What an imported module is and where it came from: read without running the module's code
when its import ends, worked out after the ready moment."""

from __future__ import annotations

import os
from types import ModuleType

from otel_coldstart import conventions as cv

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    from collections.abc import Callable
    from typing import Any

#: A module's ``__dict__`` read through the module type's own slot: no ``__getattribute__`` or
#: ``__getattr__`` of the application's runs (a proxy in sys.modules may raise from those, or a
#: lazy module may load itself). Raises ``TypeError`` for objects that are not modules.
module_dict: Callable[[object], dict[str, Any]] = vars(ModuleType)["__dict__"].__get__


def spec_and_file(module: object) -> tuple[Any, Any]:
    """A module's ``__spec__`` and ``__file__`` without running any of its code (see
    ``module_dict``); ``(None, None)`` for an object that is no module."""
    try:
        namespace = module_dict(module)
    except TypeError:
        return None, None
    return namespace.get("__spec__"), namespace.get("__file__")


class ModuleFacts:
    """What ``facts()`` found out about a module, standing in for its spec in a timeline read back
    from the spool (``raw_copy.py``): another process has no spec to look at."""

    __slots__ = ("kind", "path")

    def __init__(self, kind: str, path: str | None) -> None:
        self.kind = kind
        self.path = path


def facts(spec: Any, file: Any) -> tuple[str, str | None]:
    """``(kind, file path)`` without touching the file system: cheap enough for the exit path."""
    if isinstance(spec, ModuleFacts):
        return spec.kind, spec.path
    try:
        kind, path = _facts(spec, file)
    except Exception:
        return "unknown", None
    return kind, path if isinstance(path, str) else None


def describe(spec: Any, file: Any) -> tuple[str, str | None, int | None]:
    """Return ``(kind, file path, file size in bytes)`` from a module's ``__spec__`` and
    ``__file__`` (taken when its import ended; both ``None`` when unknown).

    Never raises: the spec may be anything a module put there.
    """
    try:
        return _describe(spec, file)
    except Exception:
        return "unknown", None, None


def _describe(spec: Any, file: Any) -> tuple[str, str | None, int | None]:
    kind, path = facts(spec, file)
    if not isinstance(path, str):
        return kind, None, None
    try:
        size = os.stat(path).st_size
    except OSError:
        size = None
    return kind, path, size


def _facts(spec: Any, file: Any) -> tuple[str, Any]:
    if spec is None:
        # Modules that replaced themselves in sys.modules, or were built by hand.
        return classify(False, None, "", False, False, file)
    origin = spec.origin
    loader_name = type(spec.loader).__name__ if spec.loader is not None else ""
    return classify(
        True, origin, loader_name, spec.has_location, spec.submodule_search_locations is not None, file
    )


def classify(
    has_spec: bool, origin: Any, loader_name: str, has_location: bool, package: bool, file: Any
) -> tuple[str, Any]:
    """``(kind, path)`` from what a module's spec says: its ``origin``, its loader's class name
    (``""`` for none), ``has_location``, whether it has ``submodule_search_locations``, and the
    module's ``__file__``. The raw copy stores these columns and the builder classifies them, in
    whichever process builds the spans (``raw_copy._columns``)."""
    path = None
    if not has_spec:
        path = file
        kind = cv.MODULE_KIND_UNKNOWN
    elif origin == "built-in" or loader_name == "BuiltinImporter":
        kind = cv.MODULE_KIND_BUILTIN
    elif origin == "frozen" or loader_name == "FrozenImporter":
        kind = cv.MODULE_KIND_FROZEN
        path = file  # frozen stdlib modules keep their source path
    elif package and not has_location:
        kind = cv.MODULE_KIND_NAMESPACE
    else:
        path = origin if has_location else file
        if loader_name == "ExtensionFileLoader":
            kind = cv.MODULE_KIND_EXTENSION
        elif package:
            kind = cv.MODULE_KIND_PACKAGE
        elif loader_name == "SourcelessFileLoader":
            kind = cv.MODULE_KIND_BYTECODE
        else:
            kind = cv.MODULE_KIND_SOURCE
    return kind, path
