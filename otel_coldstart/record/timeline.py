"""The cheap in-memory recorder that sits on the start-up path.

Everything here runs while the application starts, so it only appends small slotted records and
reads a monotonic clock. No OpenTelemetry span objects, no psutil, no I/O: those happen after the
ready moment, in ``spans.py`` and ``lifecycle.py``.
"""

from __future__ import annotations

import sys
import time
from _thread import get_ident
from contextvars import ContextVar, Token

from otel_coldstart import conventions as cv
from otel_coldstart.record import threads

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    from collections.abc import Callable
    from typing import Any

_now = time.perf_counter_ns


class ImportRecord:
    """One module import before the ready moment.

    Created when the import starts (so that imports inside it can name it as their parent),
    completed when it returns. It keeps what the span needs, never the module object: the
    module's spec and ``__file__`` read from its ``__dict__`` (no attribute lookup on the module,
    so a proxy's ``__getattr__`` never runs), so an application that unloads a module frees it.
    """

    __slots__ = (
        "end",
        "error",
        "file",
        "name",
        "parent",
        "rss_delta",
        "spec",
        "start",
        "thread",
        "via_import_module",
    )

    #: The ``coldstart.kind`` of its span, as ``Record.kind`` is for the others.
    kind = cv.KIND_IMPORT

    def __init__(self, name: str, start: int, parent: Any, thread: int, via_import_module: bool) -> None:
        self.name = name
        self.start = start
        #: 0 while the import runs (still running at ready: an incomplete span).
        self.end = 0
        #: The enclosing record (import or other) in this thread or task, or ``None``.
        self.parent = parent
        self.thread = thread
        #: ``importlib.import_module`` rather than the ``import`` statement.
        self.via_import_module = via_import_module
        #: ``(exception type, message)`` of a failed import.
        self.error: tuple[str, str] | None = None
        self.spec: Any = None
        self.file: Any = None
        #: RSS growth over the import, only with ``OTEL_PYTHON_COLDSTART_IMPORT_MEMORY``.
        self.rss_delta: int | None = None


class Record:
    """Any other timed record: a service init, tier phase, wait, lazy load or manual timer."""

    __slots__ = ("attrs", "end", "error", "kind", "name", "parent", "start", "thread")

    def __init__(
        self, kind: str, name: str, start: int, parent: Any, thread: int, attrs: dict[str, Any]
    ) -> None:
        #: ``coldstart.kind`` of the span: ``service``, ``phase``, ``wait``, ``lazy_load``, ...
        self.kind = kind
        self.name = name
        self.start = start
        self.end = 0
        self.parent = parent
        self.thread = thread
        #: The span's attributes (the kind is added when it is built).
        self.attrs = attrs
        self.error: tuple[str, str] | None = None


#: Either kind of record: both have name, start, end, parent, thread, error and kind.
AnyRecord = ImportRecord | Record


class Timeline:
    """Everything recorded before the ready moment, with the anchors needed to turn it into spans."""

    def __init__(self, origin: str) -> None:
        #: ``launcher`` under ``opentelemetry-instrument``, ``start`` for ``otel_coldstart.start()``.
        self.origin = origin
        self.wall_anchor_ns = time.time_ns()
        self.mono_anchor_ns = _now()
        self.hook_installed_ns = self.mono_anchor_ns
        self.prehook_modules: tuple[str, ...] = tuple(sys.modules)
        self.imports: list[ImportRecord] = []
        self.records: list[Record] = []
        self.counters: dict[str, int] = {}
        self.marks: dict[str, int] = {}
        self.memory_snapshots: list[Any] = []  # memory.MemorySnapshot
        self.thread_names: dict[int, str] = {get_ident(): threads.current_name()}
        self.ready_ns: int | None = None
        self.ready_trigger: str | None = None
        #: Attributes for the root span that a ready callback adds (a runtime's own facts).
        self.root_attributes: dict[str, Any] = {}

    def to_epoch_ns(self, mono_ns: int) -> int:
        return self.wall_anchor_ns + (mono_ns - self.mono_anchor_ns)

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, _now())


class _State:
    """Process-wide recorder state. A module-level singleton: there is one cold start per process."""

    def __init__(self) -> None:
        self.timeline: Timeline | None = None
        self.ready = False
        #: Threads whose imports are our own work (span building, SDK set-up): never recorded.
        self.suppressed: set[int] = set()
        self.ready_callbacks: list[Callable[[Timeline], None]] = []
        self.ready_lock = threads.allocate_lock()


state = _State()

#: The record (import or other) open in this thread or asyncio task: the parent of the next one.
#: A ContextVar rather than a per-thread stack, so concurrent asyncio tasks nest correctly.
current_record: ContextVar[AnyRecord | None] = ContextVar("otel_coldstart_current_record", default=None)


def begin(origin: str) -> Timeline:
    """Start recording (idempotent): the first caller's moment is the hook-installed moment."""
    if state.timeline is None:
        state.timeline = Timeline(origin)
    return state.timeline


def current() -> Timeline | None:
    return state.timeline


def on_ready(callback: Callable[[Timeline], None]) -> None:
    """Run ``callback(timeline)`` once, at the ready moment, on the thread that builds the spans."""
    state.ready_callbacks.append(callback)


def freeze(trigger: str) -> Timeline | None:
    """Mark the ready moment. Returns the timeline the first time, ``None`` on every later call."""
    with state.ready_lock:
        timeline = state.timeline
        if timeline is None or state.ready:
            return None
        timeline.ready_ns = _now()
        timeline.ready_trigger = trigger
        state.ready = True
        return timeline


def release(tl: Timeline) -> None:
    """Drop ``tl``'s records once its raw copy holds them (``deliver/raw_copy.py``): whoever builds
    the spans builds them from that copy.

    Kept, they hold each module's spec (and its loader) past the module itself. At exit that made
    the interpreter's teardown find them, tens of thousands of objects, in a late full collection:
    0.2-0.3 s of CPU for 20,000 imports that the same app without us never pays. In a process that
    keeps running they would only hold memory.
    """
    tl.imports = []
    tl.records = []


def reset_after_fork() -> None:
    """In a forked child the parent's cold start is not ours to report: the child's own starts now
    (if the parent was recording at all)."""
    recording = state.timeline is not None
    state.timeline = Timeline("fork") if recording else None
    state.ready = not recording
    state.suppressed = set()
    state.ready_lock = threads.allocate_lock()


def open_record(
    kind: str, name: str, attrs: dict[str, Any], parent: AnyRecord | None = None
) -> tuple[Record, Token] | None:
    """Start a non-import record; ``None`` when not recording (after ready).

    ``parent`` is used when nothing is open in the current context: work handed to a pool
    thread names the phase that handed it over. Returns the record and the token that
    ``close_record`` needs.
    """
    tl = state.timeline
    if tl is None or state.ready:
        return None
    tid = get_ident()
    if tid not in tl.thread_names:
        tl.thread_names[tid] = threads.current_name()
    record = Record(kind, name, _now(), current_record.get() or parent, tid, attrs)
    tl.records.append(record)
    return record, current_record.set(record)


def close_record(opened: tuple[Record, Token], error: tuple[str, str] | None = None) -> None:
    record, token = opened
    record.end = _now()
    record.error = error
    try:
        current_record.reset(token)
    except ValueError:
        pass  # closed in another context (a manual timer ended elsewhere): it cannot reset the var


def count(key: str) -> None:
    tl = state.timeline
    if tl is not None and not state.ready:
        tl.counters[key] = tl.counters.get(key, 0) + 1


def suppressed(tid: int | None = None) -> _Suppress:
    """Context manager: imports on this thread are our own work, not the application's."""
    return _Suppress(get_ident() if tid is None else tid)


class _Suppress:
    __slots__ = ("tid", "was")

    def __init__(self, tid: int) -> None:
        self.tid = tid
        self.was = False

    def __enter__(self) -> None:
        self.was = self.tid in state.suppressed
        state.suppressed.add(self.tid)

    def __exit__(self, *exc: object) -> None:
        if not self.was:
            state.suppressed.discard(self.tid)
