"""Process memory: cheap snapshots on the start-up path, psutil-backed gauges after ready.

On Linux a snapshot reads ``/proc/self/statm`` (RSS and VMS) and ``getrusage`` (the kernel's RSS
high-water mark): a few microseconds and no import. Importing psutil on the start-up path costs
milliseconds, so psutil is used where /proc is missing and for the observable gauges, which only
exist after the ready moment. USS needs a walk of the page tables (``smaps_rollup``): too slow for
the start-up path, so it is read once, at ready.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from otel_coldstart import timeline

try:
    import resource as _resource
except ImportError:  # pragma: no cover - Windows
    _resource = None

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# ru_maxrss is in kilobytes on Linux, in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024
_STATM = "/proc/self/statm"
_HAVE_STATM = os.path.exists(_STATM)


@dataclass(frozen=True)
class MemorySnapshot:
    label: str
    mono_ns: int
    rss: int
    vms: int
    peak_rss: int


def rss_vms() -> tuple[int, int]:
    """Current (RSS, VMS) in bytes."""
    if _HAVE_STATM:
        with open(_STATM, "rb") as handle:
            size, resident = handle.read().split()[:2]
        return int(resident) * _PAGE, int(size) * _PAGE
    import psutil

    info = psutil.Process().memory_info()
    return info.rss, info.vms


def rss() -> int:
    return rss_vms()[0]


def peak_rss() -> int:
    """The kernel's high-water mark of RSS (not just the largest of our samples)."""
    if _resource is not None:
        return _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT
    import psutil

    info = psutil.Process().memory_info()
    return getattr(info, "peak_wset", info.rss)


def take_snapshot(label: str = "manual") -> MemorySnapshot:
    """Take a snapshot; before ready it also lands on the cold-start trace as a span event."""
    current_rss, vms = rss_vms()
    snapshot = MemorySnapshot(label, time.perf_counter_ns(), current_rss, vms, max(peak_rss(), current_rss))
    tl = timeline.current()
    if tl is not None and not timeline.state.ready:
        tl.memory_snapshots.append(snapshot)
    return snapshot


def uss() -> int | None:
    """Unique set size, where the platform gives it (slow: call after ready only)."""
    try:
        import psutil

        return int(psutil.Process().memory_full_info().uss)
    except Exception:
        return None


class MemoryGauges:
    """Observable gauges for the same figures, registered with a MeterProvider after ready."""

    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None  # (mono ns, rss) of the previous collection

    def register(self, meter_provider: Any) -> list[Any]:
        from opentelemetry.metrics import CallbackOptions, Observation

        from otel_coldstart.version import __version__

        meter = meter_provider.get_meter("otel_coldstart.memory", __version__)

        def usage(options: CallbackOptions) -> Iterable[Observation]:
            yield Observation(rss())

        def virtual(options: CallbackOptions) -> Iterable[Observation]:
            yield Observation(rss_vms()[1])

        def peak(options: CallbackOptions) -> Iterable[Observation]:
            yield Observation(peak_rss())

        def growth(options: CallbackOptions) -> Iterable[Observation]:
            now, current = time.perf_counter_ns(), rss()
            last, self._last = self._last, (now, current)
            if last is not None and now > last[0]:
                yield Observation((current - last[1]) * 1e9 / (now - last[0]))

        return [
            # Semantic-convention names (process metrics), UCUM units as OTel uses them.
            meter.create_observable_gauge(
                "process.memory.usage", [usage], unit="By", description="Resident set size of the process."
            ),
            meter.create_observable_gauge(
                "process.memory.virtual",
                [virtual],
                unit="By",
                description="Virtual memory size of the process.",
            ),
            meter.create_observable_gauge(
                "coldstart.memory.peak",
                [peak],
                unit="By",
                description="High-water mark of the resident set size.",
            ),
            meter.create_observable_gauge(
                "coldstart.memory.growth_rate",
                [growth],
                unit="By/s",
                description="Change of RSS per second since the previous collection.",
            ),
        ]
