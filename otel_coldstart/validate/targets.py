"""Targets: what a cold start must stay under, where they come from, and the verdicts.

Sizes are decimal megabytes (1 MB = 1,000,000 bytes), as the figures in the seed were stated.
Targets come from (first found): ``--targets FILE`` (a TOML file with the keys at top level or
under ``[tool.otel-coldstart]``), else ``[tool.otel-coldstart]`` in ``./pyproject.toml``, else the
defaults below. Unknown keys are an error: a misspelt target must not silently pass a build.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from otel_coldstart.validate.analysis import Summary

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MB = 1_000_000


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


@dataclass(frozen=True)
class Verdict:
    key: str
    label: str
    status: str  # "pass", "fail", "not measured"
    measured: float | None
    limit: float
    unit: str

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def from_mapping(data: dict[str, Any], origin: str) -> Targets:
    known = {f.name: f for f in fields(Targets)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise TargetsError(f"{origin}: unknown target(s) {', '.join(unknown)}; known: {', '.join(known)}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise TargetsError(f"{origin}: {key} must be a non-negative number, not {value!r}")
        values[key] = int(value) if key == "max_imports" else float(value)
    return Targets(**values)


def _table(document: dict[str, Any]) -> dict[str, Any] | None:
    tool = document.get("tool")
    if isinstance(tool, dict) and isinstance(tool.get("otel-coldstart"), dict):
        section = dict(tool["otel-coldstart"])
        # Other sections of our tool's table (future settings) are not targets.
        return section.get("targets", section) if isinstance(section.get("targets"), dict) else section
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
    except OSError as exc:
        raise TargetsError(f"cannot read targets file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetsError(f"targets file {path} is not valid TOML: {exc}") from None


def judge(summary: Summary, targets: Targets) -> list[Verdict]:
    ms = 1_000_000
    mean_init = summary.mean_service_init_ns
    rows = [
        ("max_cold_start_ms", "cold start", summary.cold_start_ns / ms, targets.max_cold_start_ms, "ms"),
        (
            "max_peak_memory_mb",
            "peak memory",
            None if summary.peak_memory_bytes is None else summary.peak_memory_bytes / MB,
            targets.max_peak_memory_mb,
            "MB",
        ),
        (
            "max_mean_service_init_ms",
            "mean service init",
            None if mean_init is None else mean_init / ms,
            targets.max_mean_service_init_ms,
            "ms",
        ),
        ("max_bundle_mb", "bundle size", summary.bundle_bytes / MB, targets.max_bundle_mb, "MB"),
    ]
    if targets.max_imports is not None:
        rows.append(("max_imports", "imports", float(summary.import_count), float(targets.max_imports), ""))
    verdicts = []
    for key, label, measured, limit, unit in rows:
        status = "not measured" if measured is None else "pass" if measured <= limit else "fail"
        verdicts.append(Verdict(key, label, status, measured, limit, unit))
    return verdicts
