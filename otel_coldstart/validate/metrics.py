"""The per-cold-start figures that both the validate document (its distribution) and ``diff``
(its metric table) report: one table, so the two always name, scale and round them alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from otel_coldstart.validate.analysis import Summary

MS = 1e6
MB = 1e6


@dataclass(frozen=True)
class Metric:
    #: Key in the JSON documents: the unit is its suffix (``_ms``, ``_mb``, none for a count).
    key: str
    #: What a person reads.
    label: str
    unit: str
    measure: Callable[[Summary], float | None]
    #: The user controls it (their code, imports, services): ``diff`` gates on these.
    gated: bool = False


def _optional(value: float | None, scale: float) -> float | None:
    return None if value is None else value / scale


METRICS: tuple[Metric, ...] = (
    Metric("cold_start_ms", "cold start", "ms", lambda s: s.cold_start_ns / MS, gated=True),
    Metric("boot_ms", "boot", "ms", lambda s: s.boot_ns / MS),
    Metric("peak_memory_mb", "peak memory", "MB", lambda s: _optional(s.peak_memory_bytes, MB)),
    Metric("bundle_mb", "bundle", "MB", lambda s: s.bundle_bytes / MB),
    Metric("imports", "imports", "", lambda s: float(s.import_count)),
    Metric(
        "mean_service_init_ms", "mean service init", "ms", lambda s: _optional(s.mean_service_init_ns, MS)
    ),
    Metric("critical_ready_ms", "critical tier ready", "ms", lambda s: _optional(s.critical_ready_ns, MS)),
)


def values(metric: Metric, summaries: list[Summary] | tuple[Summary, ...]) -> list[float]:
    """The metric of every cold start that has it, in the given order."""
    return [v for v in (metric.measure(s) for s in summaries) if v is not None]
