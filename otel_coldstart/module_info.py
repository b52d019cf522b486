"""What an imported module is and where it came from, worked out after the ready moment."""

from __future__ import annotations

import os
from typing import Any

from otel_coldstart import conventions as cv


def describe(module: Any) -> tuple[str, str | None, int | None]:
    """Return ``(kind, file path, file size in bytes)`` for a module object (or ``None``)."""
    spec = getattr(module, "__spec__", None)
    path = None
    if spec is None:
        # Modules that replaced themselves in sys.modules, or were built by hand.
        path = getattr(module, "__file__", None)
        kind = cv.MODULE_KIND_UNKNOWN
    else:
        origin = spec.origin
        loader_name = type(spec.loader).__name__ if spec.loader is not None else ""
        if origin == "built-in" or loader_name == "BuiltinImporter":
            kind = cv.MODULE_KIND_BUILTIN
        elif origin == "frozen" or loader_name == "FrozenImporter":
            kind = cv.MODULE_KIND_FROZEN
            path = getattr(module, "__file__", None)  # frozen stdlib modules keep their source path
        elif spec.submodule_search_locations is not None and not spec.has_location:
            kind = cv.MODULE_KIND_NAMESPACE
        else:
            path = origin if spec.has_location else getattr(module, "__file__", None)
            if loader_name == "ExtensionFileLoader":
                kind = cv.MODULE_KIND_EXTENSION
            elif spec.submodule_search_locations is not None:
                kind = cv.MODULE_KIND_PACKAGE
            elif loader_name == "SourcelessFileLoader":
                kind = cv.MODULE_KIND_BYTECODE
            else:
                kind = cv.MODULE_KIND_SOURCE
    if not isinstance(path, str):
        return kind, None, None
    try:
        size = os.stat(path).st_size
    except OSError:
        size = None
    return kind, path, size
