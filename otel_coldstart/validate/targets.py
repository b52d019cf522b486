"""Targets: what a cold start must stay under, where they come from, and the verdicts.

Sizes are decimal megabytes (1 MB = 1,000,000 bytes), as the figures in the seed were stated.
Targets come from (first found): ``--targets FILE`` (a TOML file with the keys at top level or
under ``[tool.otel-coldstart]``), else ``[tool.otel-coldstart]`` in ``./pyproject.toml``, else the
defaults below. Unknown keys are an error: a misspelt target must not silently pass a build.

```toml
[tool.otel-coldstart]
max_cold_start_ms = 2000          # root span: process creation -> ready
max_peak_memory_mb = 100          # root span coldstart.memory.peak_rss (or its memory.snapshot events)
max_mean_service_init_ms = 500    # mean duration of the service init spans
max_bundle_mb = 5                 # third-party + application Python code the main phase imports
max_imports = 800                 # optional: modules imported before ready
max_critical_ready_ms = 1500      # optional: process creation -> critical tier initialised
max_lambda_init_ms = 1000         # optional, AWS Lambda: the init a caller waits for (SnapStart: restore)
max_first_invocation_ms = 500     # optional, AWS Lambda: the first invocation after init
statistic = "p50"                 # with many traces: p50 (default), p95, p99, max, mean...

[tool.otel-coldstart.services]    # per-service init budgets (ms), by name or glob
"db" = 300
"cache.*" = 100

[tool.otel-coldstart.modules]     # per-module import budgets (ms, cumulative), by name or glob
"pandas" = 250
```
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otel_coldstart import conventions as cv
from otel_coldstart.validate import faas, stats
from otel_coldstart.validate.analysis import Summary

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MB = 1_000_000
MS = 1_000_000


class TargetsError(ValueError):
    """The targets configuration cannot be used (unreadable, bad TOML, unknown key, bad value)."""


@dataclass(frozen=True)
class Targets:
    max_cold_start_ms: float = 2000.0
    max_peak_memory_mb: float = 100.0
    max_mean_service_init_ms: float = 500.0
    max_bundle_mb: float = 5.0
    #: Optional: fail when more modules than this are imported before ready.
    max_imports: int | None = None
    #: Optional: process creation -> end of the critical service tier.
    max_critical_ready_ms: float | None = None
    #: Optional, AWS Lambda: the init a caller waits for (SnapStart: the restore), ms.
    max_lambda_init_ms: float | None = None
    #: Optional, AWS Lambda: the first invocation after init, ms.
    max_first_invocation_ms: float | None = None
    #: Per-service init budgets in ms, keyed by service name or glob.
    services: dict[str, float] = field(default_factory=dict)
    #: Per-module cumulative import budgets in ms, keyed by module name or glob.
    modules: dict[str, float] = field(default_factory=dict)
    statistic: str = stats.DEFAULT_STATISTIC


_NUMBERS = ("max_cold_start_ms", "max_peak_memory_mb", "max_mean_service_init_ms", "max_bundle_mb")
_OPTIONAL = ("max_imports", "max_critical_ready_ms", "max_lambda_init_ms", "max_first_invocation_ms")
_TABLES = ("services", "modules")
KNOWN_KEYS = (*_NUMBERS, *_OPTIONAL, *_TABLES, "statistic")


@dataclass(frozen=True)
class Verdict:
    key: str
    label: str
    status: str  # "pass", "fail", "not measured"
    measured: float | None
    limit: float
    unit: str
    #: The per-trace values the statistic was computed from (one per cold start that measured it).
    values: tuple[float, ...] = ()
    statistic: str = stats.DEFAULT_STATISTIC
    #: What was measured, when the label alone does not say (the worst matching service...).
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def _number(origin: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise TargetsError(f"{origin}: {key} must be a non-negative number, not {value!r}")
    return float(value)


def from_mapping(data: dict[str, Any], origin: str) -> Targets:
    unknown = sorted(set(data) - set(KNOWN_KEYS))
    if unknown:
        raise TargetsError(
            f"{origin}: unknown target(s) {', '.join(unknown)}; known: {', '.join(KNOWN_KEYS)}"
        )
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise TargetsError(f"{origin}: {key} must be a table of name/glob = milliseconds")
            values[key] = {str(name): _number(origin, f"{key}.{name}", v) for name, v in value.items()}
        elif key == "statistic":
            try:
                values[key] = stats.check_statistic(value)
            except stats.StatisticError as exc:
                raise TargetsError(f"{origin}: {exc}") from None
        elif key == "max_imports":
            values[key] = int(_number(origin, key, value))
        else:
            values[key] = _number(origin, key, value)
    return Targets(**values)


def _table(document: dict[str, Any]) -> dict[str, Any] | None:
    tool = document.get("tool")
    if isinstance(tool, dict) and isinstance(tool.get("otel-coldstart"), dict):
        section = dict(tool["otel-coldstart"])
        # A nested [tool.otel-coldstart.targets] table is accepted too.
        return section["targets"] if isinstance(section.get("targets"), dict) else section
    return None


def load(path: str | None, cwd: Path | None = None) -> tuple[Targets, str]:
    """Return the targets and a description of where they came from."""
    if path is not None:
        document = _read_toml(Path(path))
        table = _table(document)
        return from_mapping(table if table is not None else document, path), path
    pyproject = (cwd or Path.cwd()) / "pyproject.toml"
    if pyproject.is_file():
        table = _table(_read_toml(pyproject))
        if table is not None:
            return from_mapping(table, f"{pyproject} [tool.otel-coldstart]"), str(pyproject)
    return Targets(), "defaults"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise TargetsError(f"targets file {path} does not exist") from None
    except IsADirectoryError:
        raise TargetsError(f"targets file {path} is a directory") from None
    except OSError as exc:
        raise TargetsError(f"cannot read targets file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetsError(f"targets file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise TargetsError(f"targets file {path} is not UTF-8 text") from None


def _match(pattern: str, name: str) -> bool:
    return name == pattern or fnmatch.fnmatchcase(name, pattern)


def _worst(items: Sequence[tuple[str, int]], pattern: str) -> tuple[float, str] | None:
    """The slowest item matching ``pattern`` (duration in ms, its name), or None."""
    matching = [(duration, name) for name, duration in items if _match(pattern, name)]
    if not matching:
        return None
    duration, name = max(matching)
    return duration / MS, name


Measure = Callable[[Summary], "tuple[float, str] | float | None"]


def _slowest_service(pattern: str) -> Measure:
    return lambda s: _worst([(f.name, f.duration_ns) for f in s.services], pattern)


def _slowest_import(pattern: str) -> Measure:
    return lambda s: _worst([(f.module, f.cumulative_ns) for f in s.imports], pattern)


def names_import(targets: Targets) -> Callable[[str], bool]:
    """Whether a module target names this module: the imports a fleet run keeps of each cold
    start (``analysis.compact``) so that those targets are judged on every one of them."""
    patterns = tuple(targets.modules)
    return lambda module: any(_match(pattern, module) for pattern in patterns)


def _rows(targets: Targets) -> list[tuple[str, str, Measure, float, str]]:
    rows: list[tuple[str, str, Measure, float, str]] = [
        (
            "max_cold_start_ms",
            "cold start",
            # Under SnapStart the root spans the snapshot too: the cold start is the restore.
            lambda s: faas.cold_start_ns(s.trace, s.cold_start_ns) / MS,
            targets.max_cold_start_ms,
            "ms",
        ),
        (
            "max_peak_memory_mb",
            "peak memory",
            lambda s: None if s.peak_memory_bytes is None else s.peak_memory_bytes / MB,
            targets.max_peak_memory_mb,
            "MB",
        ),
        (
            "max_mean_service_init_ms",
            "mean service init",
            lambda s: None if s.mean_service_init_ns is None else s.mean_service_init_ns / MS,
            targets.max_mean_service_init_ms,
            "ms",
        ),
        ("max_bundle_mb", "bundle size", lambda s: s.bundle_bytes / MB, targets.max_bundle_mb, "MB"),
    ]
    if targets.max_imports is not None:
        rows.append(
            ("max_imports", "imports", lambda s: float(s.import_count), float(targets.max_imports), "")
        )
    if targets.max_critical_ready_ms is not None:
        rows.append(
            (
                "max_critical_ready_ms",
                "critical tier ready",
                lambda s: None if s.critical_ready_ns is None else s.critical_ready_ns / MS,
                targets.max_critical_ready_ms,
                "ms",
            )
        )
    rows.extend(faas.target_rows(targets.max_lambda_init_ms, targets.max_first_invocation_ms))
    for pattern, limit in targets.services.items():
        rows.append(
            (
                f"services.{pattern}",
                f"service {pattern}",
                _slowest_service(pattern),
                limit,
                "ms",
            )
        )
    for pattern, limit in targets.modules.items():
        rows.append(
            (
                f"modules.{pattern}",
                f"{cv.IMPORT_SPAN_PREFIX}{pattern}",
                _slowest_import(pattern),
                limit,
                "ms",
            )
        )
    return rows


def judge(
    summary: Summary | Sequence[Summary], targets: Targets, statistic: str | None = None
) -> list[Verdict]:
    """Judge one cold start, or many on ``statistic`` (default: the targets' own, p50)."""
    summaries = [summary] if isinstance(summary, Summary) else list(summary)
    chosen = stats.check_statistic(statistic or targets.statistic)
    verdicts = []
    for key, label, measure, limit, unit in _rows(targets):
        values: list[float] = []
        names: list[str] = []
        for item in summaries:
            measured = measure(item)
            if measured is None:
                continue
            if isinstance(measured, tuple):
                values.append(measured[0])
                names.append(measured[1])
            else:
                values.append(float(measured))
        if not values:
            verdicts.append(Verdict(key, label, "not measured", None, limit, unit, (), chosen))
            continue
        value = stats.compute(values, chosen)
        detail = ""
        if names:
            unique = sorted(set(names))
            detail = ", ".join(unique[:3]) + (f" (+{len(unique) - 3})" if len(unique) > 3 else "")
        status = "pass" if value <= limit else "fail"
        verdicts.append(Verdict(key, label, status, value, limit, unit, tuple(values), chosen, detail))
    return verdicts
