"""Where a module's file lives, judged from its path: the standard library, an installed library
(site-packages), or the application's own code. Unknown paths count as libraries."""

from __future__ import annotations

import re

_LIBRARY_MARKERS = ("site-packages", "dist-packages")
_STDLIB = re.compile(r"/lib/python\d", re.IGNORECASE)


def is_stdlib_path(path: str) -> bool:
    normalised = path.replace("\\", "/")
    if not path or any(marker in normalised for marker in _LIBRARY_MARKERS):
        return False
    return _STDLIB.search(normalised) is not None or "/Lib/" in path


def is_library_path(path: str) -> bool:
    """site-packages or the standard library; an empty path (built-in, foreign trace) too."""
    if not path:
        return True
    normalised = path.replace("\\", "/")
    return any(marker in normalised for marker in _LIBRARY_MARKERS) or is_stdlib_path(path)
