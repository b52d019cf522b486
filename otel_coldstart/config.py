"""Settings read from ``OTEL_PYTHON_COLDSTART_*`` environment variables.

Read once, on demand, with nothing but ``os.environ``: this module sits on the start-up path.
"""

from __future__ import annotations

import math
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and dataclasses stay off the start-up path (inspect, ast, re: ~10 ms)
    from collections.abc import Callable
    from typing import Any

PREFIX = "OTEL_PYTHON_COLDSTART_"
READY_MODES = ("auto", "explicit", "exit")
EXIT_EXPORT_MODES = ("auto", "defer")


class ConfigError(ValueError):
    """An ``OTEL_PYTHON_COLDSTART_*`` variable holds a value we cannot use."""


def _float(raw: str, maximum: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{raw!r} is not a finite number")
    if value < 0:
        raise ConfigError(f"{raw!r} must not be negative")
    if value > maximum:
        raise ConfigError(f"{raw!r} is more than {maximum:g}")
    return value


def _int(raw: str, maximum: float) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{raw!r} is not a whole number") from None
    if value < 0:
        raise ConfigError(f"{raw!r} must not be negative")
    if value > maximum:
        raise ConfigError(f"{raw!r} is more than {maximum:g}")
    return value


def _bool(raw: str, maximum: float) -> bool:
    raw = raw.lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{raw!r} is not a boolean (use true or false)")


def _ready(raw: str, maximum: float) -> str:
    ready = raw.lower()
    if ready not in READY_MODES:
        raise ConfigError(f"{ready!r} must be one of {', '.join(READY_MODES)}")
    return ready


def _exit_export(raw: str, maximum: float) -> str:
    mode = raw.lower()
    if mode not in EXIT_EXPORT_MODES:
        raise ConfigError(f"{mode!r} must be one of {', '.join(EXIT_EXPORT_MODES)}")
    return mode


def _text(raw: str, maximum: float) -> str:
    return raw


#: A day: no timeout or retry window of ours is meant to be longer, and every bound keeps the
#: clock arithmetic and thread timeouts finite (1e300 seconds overflows a lock's timeout).
DAY_S = 86_400.0


class Setting:
    """One setting: the variable it comes from, its default, how to read it, its bound."""

    __slots__ = ("default", "env", "maximum", "name", "read")

    def __init__(self, env: str, default: Any, read: Callable[[str, float], Any], maximum: float) -> None:
        self.name = ""  # the attribute's name, set by ``_settings_class``
        self.env = env
        self.default = default
        self.read = read
        self.maximum = maximum

    def __repr__(self) -> str:
        return f"Setting({self.name!r}, env={PREFIX}{self.env}, default={self.default!r})"


def _setting(env: str, default: Any, read: Callable[[str, float], Any], maximum: float = math.inf) -> Any:
    """A field of ``Settings``: its default, the variable it comes from, how to read it, its bound."""
    return Setting(env, default, read, maximum)


def _settings_class(cls: type[Settings]) -> type[Settings]:
    """What ``@dataclass(frozen=True)`` did, by hand: each ``Setting`` becomes its default as the
    class attribute and an entry of ``SETTINGS``, in declaration order."""
    found = []
    for name, value in list(vars(cls).items()):
        if isinstance(value, Setting):
            value.name = name
            found.append(value)
            setattr(cls, name, value.default)
    cls.SETTINGS = tuple(found)
    return cls


@_settings_class
class Settings:
    """Every ``OTEL_PYTHON_COLDSTART_*`` setting: the one place that names each variable and
    spells its default and its bound (the README's table repeats them for readers).

    Immutable; ``Settings(name=value, ...)`` overrides defaults (tests, tools)."""

    #: Every setting, in declaration order (filled in by ``_settings_class``).
    SETTINGS: tuple[Setting, ...] = ()

    #: ``auto``: ``mark_ready()`` if the app calls it, else process exit. ``explicit``: only
    #: ``mark_ready()`` (and exit, so the trace is never lost). ``exit``: ignore ``mark_ready()``.
    ready: str = _setting("READY", "auto", _ready)
    #: Declare ready after this many seconds even if nobody did (0 disables).
    ready_timeout_s: float = _setting("READY_TIMEOUT", 0.0, _float, DAY_S)
    #: Write the cold-start trace as OTLP JSON lines to this file (no collector needed).
    trace_file: str | None = _setting("TRACE_FILE", None, _text)
    #: Drop import spans shorter than this (Datadog's DD_MIN_COLD_START_DURATION idea); 0 keeps all.
    min_import_duration_ms: float = _setting("MIN_IMPORT_DURATION_MS", 0.0, _float, DAY_S * 1000)
    #: Upper bound on the time our exit handler may hold the process after the app is done.
    exit_timeout_s: float = _setting("EXIT_TIMEOUT", 0.5, _float, DAY_S)
    #: A cold start still unsent when the process exits: ``auto`` sends it if that fits the exit
    #: budget; ``defer`` never imports the SDK or an exporter at exit, and leaves it spooled for the
    #: next process that lives past its ready moment or ``otel-coldstart flush`` (the trace file is
    #: written either way).
    exit_export: str = _setting("EXIT_EXPORT", "auto", _exit_export)
    #: Record imports that happen after the ready moment as live spans.
    live_imports: bool = _setting("LIVE_IMPORTS", True, _bool)
    #: Put each import's RSS delta on its span (two /proc reads per import).
    import_memory: bool = _setting("IMPORT_MEMORY", False, _bool)
    #: Where unsent cold-start traces wait (``None``: $XDG_CACHE_HOME or ~/.cache/otel-coldstart/spool;
    #: ``none`` disables the spool).
    spool_dir: str | None = _setting("SPOOL_DIR", None, _text)
    #: Cap on the spool's total size; the oldest whole files go first.
    spool_max_bytes: int = _setting("SPOOL_MAX_BYTES", 64 * 1024 * 1024, _int, 2**62)
    #: How long a process that keeps running retries a failed export in the background.
    retry_s: float = _setting("RETRY_SECONDS", 60.0, _float, DAY_S)
    #: Send earlier processes' spooled cold starts after this one's ready moment.
    spool_drain: bool = _setting("SPOOL_DRAIN", True, _bool)
    #: AWS Lambda: how long delivery may hold the runtime before it asks for the next invocation
    #: (the sandbox may freeze right after that request).
    lambda_flush_timeout_s: float = _setting("LAMBDA_FLUSH_TIMEOUT", 1.0, _float, DAY_S)
    #: Main-thread sampling interval before ready (startup_profile.py); 0 turns the profile off.
    #: 100 Hz, as always-on profilers sample: at 2 ms the sampler's GIL hand-overs cost a busy
    #: machine 6 % of the main phase (`benchmarks/startup_profile.py`), at 10 ms 2 %.
    profile_interval_ms: float = _setting("PROFILE_INTERVAL_MS", 10.0, _float, 1000.0)

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            if not any(setting.name == name for setting in self.SETTINGS):
                raise TypeError(f"Settings() got an unexpected keyword argument {name!r}")
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, setting.name) for setting in self.SETTINGS)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not Settings:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{s.name}={getattr(self, s.name)!r}" for s in self.SETTINGS)
        return f"Settings({shown})"


def has_exporter() -> bool:
    """``OTEL_TRACES_EXPORTER`` names a traces exporter (its default is ``otlp``; ``none``: none)."""
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    return any(name.strip() not in ("", "none") for name in names.split(","))


def has_sink(settings: Settings) -> bool:
    """A trace file or a traces exporter to deliver to: without either a built trace goes nowhere."""
    return bool(settings.trace_file) or has_exporter()


def load() -> tuple[Settings, list[str]]:
    """All settings, a bad one replaced by its default: one typo must not switch the others off
    (a bad READY must not drop the trace file). Returns the settings and one message per bad one."""
    values: dict[str, Any] = {}
    problems = []
    for setting in Settings.SETTINGS:
        name = PREFIX + setting.env
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue  # unset or blank: the default
        try:
            values[setting.name] = setting.read(raw, setting.maximum)
        except ConfigError as exc:
            problems.append(f"{name}={exc}")
    return Settings(**values), problems
