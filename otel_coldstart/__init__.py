"""otel-coldstart: make a Python application's cold start visible and enforceable.

The public API is re-exported here lazily (PEP 562): importing ``otel_coldstart`` must stay
cheap, because the launcher imports it on the start-up path it is about to measure.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from otel_coldstart.version import __version__

_EXPORTS = {
    "start": "otel_coldstart.api",
    "mark_ready": "otel_coldstart.api",
    "ConfigError": "otel_coldstart.config",
    "Settings": "otel_coldstart.config",
}

__all__ = ["ConfigError", "Settings", "__version__", "mark_ready", "start"]

if TYPE_CHECKING:
    from otel_coldstart.api import mark_ready, start
    from otel_coldstart.config import ConfigError, Settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_coldstart' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
