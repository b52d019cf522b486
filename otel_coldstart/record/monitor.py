"""Manual timings for code that creates its services its own way.

``start_service_timer(name)`` / ``end_service_timer(name)`` time a service init by hand; before
the ready moment the interval lands in the cold-start timeline as a service span (``init <name>``,
``coldstart.service.tier = manual``), so the validator counts it like the factory's inits, and
imports that run in between (on the same thread) nest under it. After ready it is a live span.
``take_memory_snapshot(label)`` adds a memory snapshot to the cold-start trace.

Without a recorder (no ``opentelemetry-instrument``, no ``otel_coldstart.start()``) all three
return at once: one attribute read, no import.
"""

from __future__ import annotations

import threading

from otel_coldstart import conventions as cv
from otel_coldstart.record import timeline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["end_service_timer", "service_timer", "start_service_timer", "take_memory_snapshot"]

_state = timeline.state
#: Open timers by name: ("record", opened record, rss before) or ("span", live span, None).
_open: dict[str, tuple[str, Any, int]] = {}
_lock = threading.Lock()
TRACER_NAME = "otel_coldstart.record.monitor"


def _attrs(name: str) -> dict[str, Any]:
    return {
        cv.SERVICE_NAME: name,
        cv.SERVICE_TIER: cv.TIER_MANUAL,
        cv.SERVICE_CACHE: cv.CACHE_MISS,
        cv.THREAD_NAME: threading.current_thread().name,
    }


def start_service_timer(name: str) -> None:
    """Start timing the init of service ``name`` (one open timer per name)."""
    if _state.timeline is None:
        return
    from otel_coldstart.record import memory

    if not _state.ready:
        rss_before = memory.rss()
        opened = timeline.open_record(cv.KIND_SERVICE, f"{cv.INIT_SPAN_PREFIX}{name}", _attrs(name))
        if opened is not None:
            with _lock:
                _open[name] = ("record", opened, rss_before)
        return
    from opentelemetry import trace

    span = trace.get_tracer(TRACER_NAME).start_span(
        f"{cv.INIT_SPAN_PREFIX}{name}", attributes={cv.KIND: cv.KIND_SERVICE, **_attrs(name)}
    )
    with _lock:
        _open[name] = ("span", span, memory.rss())


def end_service_timer(name: str, error: BaseException | None = None) -> int | None:
    """Stop the timer started for ``name``; returns its duration in ns (``None`` if none was open).

    Pass the exception the init raised, if any, to mark the span as failed. End a timer on the
    thread that started it, so that the imports in between nest under it.
    """
    if _state.timeline is None:
        return None
    with _lock:
        entry = _open.pop(name, None)
    if entry is None:
        return None
    from otel_coldstart.record import service_tracing

    how, handle, rss_before = entry
    if how == "record":
        described = None
        if error is not None:
            from otel_coldstart.record.imports import _describe

            described = _describe(error)
        service_tracing.close(handle, cv.KIND_SERVICE, rss_before, described)
        record: timeline.Record = handle[0]
        return record.end - record.start
    span = handle
    service_tracing.end_live(span, cv.KIND_SERVICE, rss_before, error is None)
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()
    start = getattr(span, "start_time", None)
    end = getattr(span, "end_time", None)
    return end - start if start is not None and end is not None else None


class service_timer:
    """``with service_timer("db"): ...`` times the block; an exception marks it failed."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        start_service_timer(self.name)

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        end_service_timer(self.name, exc)


def take_memory_snapshot(label: str | None = None) -> Any:
    """Record a memory snapshot (RSS, VMS, peak) on the cold-start trace; returns it, or
    ``None`` when nothing is being recorded."""
    if _state.timeline is None:
        return None
    from otel_coldstart.record import memory

    return memory.take_snapshot(label or "manual")
