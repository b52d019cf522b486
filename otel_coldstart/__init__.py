"""otel-coldstart: make a Python application's cold start visible and enforceable.

The public API is re-exported here lazily (PEP 562): importing ``otel_coldstart`` must stay
cheap, because the launcher imports it on the start-up path it is about to measure.
"""

from __future__ import annotations

import sys

from otel_coldstart.version import __version__

# Neither typing nor importlib at run time: the start-up hook imports this package in every traced
# interpreter, before it can record anything (typing alone costs ~3 ms: it imports re).
TYPE_CHECKING = False

_EXPORTS = {
    "start": "otel_coldstart.api",
    "mark_ready": "otel_coldstart.api",
    "ConfigError": "otel_coldstart.config",
    "Settings": "otel_coldstart.config",
    "ServiceFactory": "otel_coldstart.library.services",
    "Tier": "otel_coldstart.library.services",
    "ServiceError": "otel_coldstart.library.services",
    "ServiceConfigError": "otel_coldstart.library.services",
    "ServiceInitError": "otel_coldstart.library.services",
    "DisposeError": "otel_coldstart.library.services",
    "LazyLoader": "otel_coldstart.library.lazy",
    "lazy_module": "otel_coldstart.library.lazy",
    "start_service_timer": "otel_coldstart.record.monitor",
    "end_service_timer": "otel_coldstart.record.monitor",
    "service_timer": "otel_coldstart.record.monitor",
    "take_memory_snapshot": "otel_coldstart.record.monitor",
}

__all__ = [
    "ConfigError",
    "DisposeError",
    "LazyLoader",
    "ServiceConfigError",
    "ServiceError",
    "ServiceFactory",
    "ServiceInitError",
    "Settings",
    "Tier",
    "__version__",
    "end_service_timer",
    "lazy_module",
    "mark_ready",
    "service_timer",
    "start",
    "start_service_timer",
    "take_memory_snapshot",
]

if TYPE_CHECKING:
    from typing import Any

    from otel_coldstart.api import mark_ready, start
    from otel_coldstart.config import ConfigError, Settings
    from otel_coldstart.library.lazy import LazyLoader, lazy_module
    from otel_coldstart.library.services import (
        DisposeError,
        ServiceConfigError,
        ServiceError,
        ServiceFactory,
        ServiceInitError,
        Tier,
    )
    from otel_coldstart.record.monitor import (
        end_service_timer,
        service_timer,
        start_service_timer,
        take_memory_snapshot,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_coldstart' has no attribute {name!r}")
    __import__(module)
    value = getattr(sys.modules[module], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
