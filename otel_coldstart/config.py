"""Settings read from ``OTEL_PYTHON_COLDSTART_*`` environment variables.

Read once, on demand, with nothing but ``os.environ``: this module sits on the start-up path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PREFIX = "OTEL_PYTHON_COLDSTART_"
READY_MODES = ("auto", "explicit", "exit")


class ConfigError(ValueError):
    """An ``OTEL_PYTHON_COLDSTART_*`` variable holds a value we cannot use."""


@dataclass(frozen=True)
class Settings:
    #: ``auto``: ``mark_ready()`` if the app calls it, else process exit. ``explicit``: only
    #: ``mark_ready()`` (and exit, so the trace is never lost). ``exit``: ignore ``mark_ready()``.
    ready: str = "auto"
    #: Declare ready after this many seconds even if nobody did (0 disables).
    ready_timeout_s: float = 0.0
    #: Write the cold-start trace as OTLP JSON lines to this file (no collector needed).
    trace_file: str | None = None
    #: Drop import spans shorter than this (Datadog's DD_MIN_COLD_START_DURATION idea); 0 keeps all.
    min_import_duration_ms: float = 0.0
    #: Upper bound on the time our exit handler may hold the process after the app is done.
    exit_timeout_s: float = 0.5
    #: Record imports that happen after the ready moment as live spans.
    live_imports: bool = True
    #: Put each import's RSS delta on its span (two /proc reads per import).
    import_memory: bool = False
    #: Where unsent cold-start traces wait (``None``: $XDG_CACHE_HOME or ~/.cache/otel-coldstart/spool;
    #: ``none`` disables the spool).
    spool_dir: str | None = None
    #: Cap on the spool's total size; the oldest whole files go first.
    spool_max_bytes: int = 64 * 1024 * 1024
    #: How long a process that keeps running retries a failed export in the background.
    retry_s: float = 60.0
    #: Send earlier processes' spooled cold starts after this one's ready moment.
    spool_drain: bool = True
    #: AWS Lambda: how long delivery may hold the runtime before it asks for the next invocation
    #: (the sandbox may freeze right after that request).
    lambda_flush_timeout_s: float = 1.0


def _float(name: str, default: float) -> float:
    raw = os.environ.get(PREFIX + name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}={raw!r} is not a number") from None
    if value < 0:
        raise ConfigError(f"{PREFIX}{name}={raw!r} must not be negative")
    return value


def _int(name: str, default: int) -> int:
    raw = os.environ.get(PREFIX + name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}={raw!r} is not a whole number") from None
    if value < 0:
        raise ConfigError(f"{PREFIX}{name}={raw!r} must not be negative")
    return value


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(PREFIX + name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{PREFIX}{name}={raw!r} is not a boolean (use true or false)")


def _ready() -> str:
    ready = os.environ.get(PREFIX + "READY", "auto").strip().lower() or "auto"
    if ready not in READY_MODES:
        raise ConfigError(f"{PREFIX}READY={ready!r} must be one of {', '.join(READY_MODES)}")
    return ready


_READERS: dict[str, Callable[[], Any]] = {
    "ready": _ready,
    "ready_timeout_s": lambda: _float("READY_TIMEOUT", 0.0),
    "trace_file": lambda: os.environ.get(PREFIX + "TRACE_FILE") or None,
    "min_import_duration_ms": lambda: _float("MIN_IMPORT_DURATION_MS", 0.0),
    "exit_timeout_s": lambda: _float("EXIT_TIMEOUT", 0.5),
    "live_imports": lambda: _bool("LIVE_IMPORTS", True),
    "import_memory": lambda: _bool("IMPORT_MEMORY", False),
    "spool_dir": lambda: os.environ.get(PREFIX + "SPOOL_DIR", "").strip() or None,
    "spool_max_bytes": lambda: _int("SPOOL_MAX_BYTES", 64 * 1024 * 1024),
    "retry_s": lambda: _float("RETRY_SECONDS", 60.0),
    "spool_drain": lambda: _bool("SPOOL_DRAIN", True),
    "lambda_flush_timeout_s": lambda: _float("LAMBDA_FLUSH_TIMEOUT", 1.0),
}


def load() -> tuple[Settings, list[str]]:
    """All settings, a bad one replaced by its default: one typo must not switch the others off
    (a bad READY must not drop the trace file). Returns the settings and one message per bad one."""
    values: dict[str, Any] = {}
    problems = []
    for field, read in _READERS.items():
        try:
            values[field] = read()
        except ConfigError as exc:
            problems.append(str(exc))
    return Settings(**values), problems
