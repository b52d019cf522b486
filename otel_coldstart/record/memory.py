"""Process memory: cheap snapshots on the start-up path, psutil-backed gauges after ready.

On Linux a snapshot reads ``/proc/self/statm`` (RSS and VMS) and ``VmHWM`` from
``/proc/self/status`` (the kernel's RSS high-water mark): ~15 microseconds and no import.
Importing psutil on the start-up path costs milliseconds, so psutil is used where /proc is
missing and for the observable gauges, which only exist after the ready moment. USS needs a
walk of the page tables (``smaps_rollup``): too slow for the start-up path, so it is read once,
at ready.
"""

from __future__ import annotations

import os
import sys
import time

from otel_coldstart import conventions as cv
from otel_coldstart.record import timeline

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    from collections.abc import Iterable
    from typing import Any

try:
    import resource as _resource
except ImportError:  # pragma: no cover - Windows
    _resource = None  # type: ignore[assignment]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# ru_maxrss is in kilobytes on Linux, in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024
_STATM = "/proc/self/statm"
_HAVE_STATM = os.path.exists(_STATM)
_STATUS = "/proc/self/status"
_HAVE_STATUS = _HAVE_STATM


class MemorySnapshot:
    """One reading, immutable. A hand-written slotted class rather than a dataclass: importing
    ``dataclasses`` (inspect, ast, dis, tokenize with it) cost the start-up path ~10 ms."""

    __slots__ = ("label", "mono_ns", "peak_rss", "rss", "vms")
    label: str
    mono_ns: int
    rss: int
    vms: int
    peak_rss: int

    def __init__(self, label: str, mono_ns: int, rss: int, vms: int, peak_rss: int) -> None:
        for name, value in zip(
            ("label", "mono_ns", "rss", "vms", "peak_rss"), (label, mono_ns, rss, vms, peak_rss), strict=True
        ):
            object.__setattr__(self, name, value)

    def _fields(self) -> tuple[str, int, int, int, int]:
        return (self.label, self.mono_ns, self.rss, self.vms, self.peak_rss)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not MemorySnapshot:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        label, mono_ns, rss, vms, peak_rss = self._fields()
        return f"MemorySnapshot({label=!r}, {mono_ns=}, {rss=}, {vms=}, {peak_rss=})"


_proc_fds: dict[str, int] = {}


def _read_proc(path: str, size: int) -> bytes:
    """A ``/proc/self`` file through a descriptor kept open: ``pread`` on it costs ~2 us against
    ~13 us for open/read/close, which matters when every import is measured."""
    fd = _proc_fds.get(path)
    if fd is None:
        fd = _proc_fds[path] = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    return os.pread(fd, size, 0)


def _reopen_after_fork() -> None:
    # /proc/self was resolved when a descriptor was opened: in a child it still names the parent.
    for fd in _proc_fds.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _proc_fds.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reopen_after_fork)


def rss_vms() -> tuple[int, int]:
    """Current (RSS, VMS) in bytes."""
    if _HAVE_STATM:
        size, resident = _read_proc(_STATM, 128).split()[:2]
        return int(resident) * _PAGE, int(size) * _PAGE
    import psutil

    info = psutil.Process().memory_info()
    return info.rss, info.vms


def rss() -> int:
    return rss_vms()[0]


def peak_rss() -> int:
    """The kernel's high-water mark of this process image's RSS (not just the largest of our samples).

    On Linux it is ``VmHWM`` of ``/proc/self/status``, which belongs to the current address space.
    ``getrusage``'s ``ru_maxrss`` would be wrong here: it survives ``execve``, and
    ``opentelemetry-instrument`` is a Python process that execs the app, so the launcher's own
    peak would pass for the app's.
    """
    if _HAVE_STATUS:
        try:
            status = _read_proc(_STATUS, 4096)
            start = status.index(b"VmHWM:") + 6
            return int(status[start : status.index(b"kB", start)]) * 1024
        except (OSError, ValueError):
            pass
    if _resource is not None:
        return _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT
    import psutil

    info = psutil.Process().memory_info()
    return getattr(info, "peak_wset", info.rss)


_largest_sample = 0


def take_snapshot(label: str = "manual") -> MemorySnapshot:
    """Take a snapshot; before ready it also lands on the cold-start trace as a span event.

    The peak is the larger of the kernel's high-water mark and our largest sample: Linux folds
    RSS into the high-water mark lazily, so right after a burst ``statm`` can be ahead of it.
    """
    global _largest_sample
    current_rss, vms = rss_vms()
    _largest_sample = max(_largest_sample, current_rss)
    snapshot = MemorySnapshot(
        label, time.perf_counter_ns(), current_rss, vms, max(peak_rss(), _largest_sample)
    )
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


#: Instruments registered by ``MemoryGauges``: (name, unit, kind, description), in the order
#: ``register`` returns them. The ``process.*`` ones follow the OS process metrics semantic
#: conventions, which define them as UpDownCounters (asynchronous here, observed at collection
#: time); the ``coldstart.*`` ones have no convention and are gauges.
INSTRUMENTS = (
    (cv.METRIC_MEMORY_USAGE, "By", "updowncounter", "The amount of physical memory in use."),
    (cv.METRIC_MEMORY_VIRTUAL, "By", "updowncounter", "The amount of committed virtual memory."),
    (
        cv.METRIC_MEMORY_PEAK,
        "By",
        "gauge",
        "High-water mark of the resident set size (the kernel's, not our samples').",
    ),
    (
        cv.METRIC_MEMORY_GROWTH_RATE,
        "By/s",
        "gauge",
        "Change of the resident set size per second since the previous collection.",
    ),
    (
        cv.METRIC_MEMORY_USS,
        "By",
        "gauge",
        "Unique set size: memory that would be freed if the process exited.",
    ),
)


class MemoryGauges:
    """Observable instruments for the same figures, registered with a MeterProvider after ready.

    Nothing is read until the reader collects (every ``OTEL_METRIC_EXPORT_INTERVAL``), so the
    instruments cost nothing between collections.
    """

    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None  # (mono ns, rss) of the previous collection

    def register(self, meter_provider: Any) -> list[Any]:
        from opentelemetry.metrics import CallbackOptions, Observation

        from otel_coldstart.version import __version__

        meter = meter_provider.get_meter("otel_coldstart.record.memory", __version__)

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

        def unique(options: CallbackOptions) -> Iterable[Observation]:
            value = uss()
            if value is not None:
                yield Observation(value)

        callbacks = {
            cv.METRIC_MEMORY_USAGE: usage,
            cv.METRIC_MEMORY_VIRTUAL: virtual,
            cv.METRIC_MEMORY_PEAK: peak,
            cv.METRIC_MEMORY_GROWTH_RATE: growth,
            cv.METRIC_MEMORY_USS: unique,
        }
        create = {
            "updowncounter": meter.create_observable_up_down_counter,
            "gauge": meter.create_observable_gauge,
        }
        return [
            create[kind](name, [callbacks[name]], unit=unit, description=description)
            for name, unit, kind, description in INSTRUMENTS
        ]
