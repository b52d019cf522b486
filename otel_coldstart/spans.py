"""Turning the frozen timeline into real OpenTelemetry spans with explicit timestamps.

Runs after the ready moment only. Span shape (all in one trace)::

    coldstart                       process creation -> ready
    ├── coldstart.boot              process creation -> our hook installed (interpreter, site, launcher)
    ├── coldstart.launcher          hook installed -> launcher done (other instrumentors, configurator)
    │   └── import x ...
    └── coldstart.main              launcher done (or start()) -> ready: the application's own start-up
        └── import y
            └── import y.z
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from otel_coldstart import module_info
from otel_coldstart.timeline import (
    ATTRS,
    END,
    ERROR,
    KIND,
    MODULE,
    NAME,
    PARENT,
    START,
    THREAD,
    VIA,
    Timeline,
)

ROOT_SPAN = "coldstart"
BOOT_SPAN = "coldstart.boot"
LAUNCHER_SPAN = "coldstart.launcher"
MAIN_SPAN = "coldstart.main"
IMPORT_PREFIX = "import "
#: Position of the optional RSS delta an import record carries with OTEL_PYTHON_COLDSTART_IMPORT_MEMORY.
RSS_DELTA = 8


def _memory_events(root: Span, snapshots: list[Any], to_ns: Callable[[int], int]) -> None:
    previous = None
    for snapshot in snapshots:
        attrs: dict[str, Any] = {
            "coldstart.memory.label": snapshot.label,
            "coldstart.memory.rss": snapshot.rss,
            "coldstart.memory.vms": snapshot.vms,
            "coldstart.memory.peak_rss": snapshot.peak_rss,
        }
        if previous is not None and snapshot.mono_ns > previous.mono_ns:
            rate = (snapshot.rss - previous.rss) * 1e9 / (snapshot.mono_ns - previous.mono_ns)
            attrs["coldstart.memory.growth_rate"] = rate
        root.add_event("memory.snapshot", attrs, to_ns(snapshot.mono_ns))
        previous = snapshot


def _import_attributes(name: str, module: Any, via_import_module: bool) -> dict[str, Any]:
    kind, path, size = module_info.describe(module)
    attrs: dict[str, Any] = {
        "coldstart.kind": "import",
        "coldstart.module.name": name,
        "coldstart.module.kind": kind,
        "coldstart.import.api": "import_module" if via_import_module else "import",
    }
    if path is not None:
        attrs["code.file.path"] = path
    if size is not None:
        attrs["coldstart.module.size"] = size
    return attrs


def _end_with_error(span: Span, error: tuple[str, str] | None, end_ns: int | None) -> None:
    span.set_attribute("coldstart.import.outcome", "ok" if error is None else "error")
    _end_record(span, error, end_ns)


def _end_record(span: Span, error: tuple[str, str] | None, end_ns: int | None) -> None:
    if error is not None:
        exc_type, message = error
        span.add_event("exception", {"exception.type": exc_type, "exception.message": message}, end_ns)
        span.set_status(Status(StatusCode.ERROR, f"{exc_type}: {message}"))
    span.end(end_time=end_ns)


def _child(tracer: Tracer, name: str, parent: Span, start_ns: int, attrs: dict[str, Any]) -> Span:
    ctx = trace.set_span_in_context(parent, otel_context.Context())
    return tracer.start_span(name, context=ctx, start_time=start_ns, attributes=attrs)


def build(
    timeline: Timeline,
    tracer: Tracer,
    process_start_ns: int,
    min_import_ns: int = 0,
    extra_root_attributes: dict[str, Any] | None = None,
) -> Span:
    """Emit the cold-start trace through ``tracer``; returns the (ended) root span."""
    to_ns = timeline.to_epoch_ns
    hook_ns = to_ns(timeline.hook_installed_ns)
    ready_mono = timeline.ready_ns if timeline.ready_ns is not None else timeline.hook_installed_ns
    ready_ns = to_ns(ready_mono)
    # The process clock has a coarse resolution (clock ticks): never let boot end before it starts.
    start_ns = min(process_start_ns, hook_ns)

    imports = timeline.imports
    bundle = 0
    for record in imports:
        if record[MODULE] is not None:
            _, _, size = module_info.describe(record[MODULE])
            bundle += size or 0
    root_attrs: dict[str, Any] = {
        "coldstart.kind": "root",
        "coldstart.origin": timeline.origin,
        "coldstart.ready.trigger": timeline.ready_trigger or "unknown",
        "coldstart.imports.count": len(imports),
        "coldstart.imports.failed": sum(1 for r in imports if r[ERROR] is not None),
        "coldstart.bundle.size": bundle,
        "coldstart.boot.duration_ns": hook_ns - start_ns,
    }
    snapshots = timeline.memory_snapshots
    if snapshots:
        at_ready = snapshots[-1]
        root_attrs["coldstart.memory.rss_at_ready"] = at_ready.rss
        root_attrs["coldstart.memory.peak_rss"] = max(s.peak_rss for s in snapshots)
    if extra_root_attributes:
        root_attrs.update(extra_root_attributes)
    root = tracer.start_span(
        ROOT_SPAN, context=otel_context.Context(), start_time=start_ns, attributes=root_attrs
    )
    _memory_events(root, snapshots, to_ns)

    boot = _child(
        tracer,
        BOOT_SPAN,
        root,
        start_ns,
        {
            "coldstart.kind": "phase",
            "coldstart.phase": "boot",
            "coldstart.prehook.module_count": len(timeline.prehook_modules),
            "coldstart.prehook.modules": list(timeline.prehook_modules),
        },
    )
    boot.end(end_time=hook_ns)

    launcher_done = timeline.marks.get("launcher_done")
    phases: list[tuple[Span, int, int]] = []
    main_start = timeline.hook_installed_ns
    if launcher_done is not None and launcher_done <= ready_mono:
        launcher = _child(
            tracer, LAUNCHER_SPAN, root, hook_ns, {"coldstart.kind": "phase", "coldstart.phase": "launcher"}
        )
        phases.append((launcher, timeline.hook_installed_ns, launcher_done))
        main_start = launcher_done
    main = _child(
        tracer, MAIN_SPAN, root, to_ns(main_start), {"coldstart.kind": "phase", "coldstart.phase": "main"}
    )
    phases.append((main, main_start, ready_mono))

    def phase_for(start_mono: int) -> Span:
        for span, begin, end in phases:
            if begin <= start_mono < end:
                return span
        return phases[-1][0] if start_mono >= phases[-1][1] else phases[0][0]

    # Parents start before their children, so emitting in start order creates parents first.
    records = sorted([*imports, *timeline.records], key=lambda r: r[START])
    emitted = _emit(tracer, records, phase_for, ready_mono, min_import_ns, timeline.thread_names, to_ns)
    for span, _, end in phases:
        span.end(end_time=to_ns(end))
    root.set_attribute("coldstart.imports.recorded", emitted)
    root.end(end_time=ready_ns)
    return root


def _emit(
    tracer: Tracer,
    records: Iterable[list[Any]],
    phase_for: Callable[[int], Span],
    ready_mono: int,
    min_import_ns: int,
    thread_names: dict[int, str],
    to_ns: Callable[[int], int],
) -> int:
    """Emit import and other records; returns how many import spans were kept."""
    spans: dict[int, Span] = {}
    main_tid = next(iter(thread_names), None)
    kept_imports = 0
    for record in records:
        start = record[START]
        if start >= ready_mono:
            continue
        end = record[END]
        incomplete = end == 0 or end > ready_mono
        if incomplete:
            end = ready_mono
        is_import = not isinstance(record[ATTRS], dict)
        if is_import and min_import_ns and end - start < min_import_ns:
            continue
        parent_record = record[PARENT]
        parent = spans.get(id(parent_record)) if parent_record is not None else None
        if parent is None:
            parent = phase_for(start)
        if is_import:
            name = IMPORT_PREFIX + record[NAME]
            attrs = _import_attributes(record[NAME], record[MODULE], record[VIA])
            if len(record) > RSS_DELTA:
                attrs["coldstart.memory.rss_delta"] = record[RSS_DELTA]
            if incomplete:
                attrs["coldstart.import.incomplete"] = True
            kept_imports += 1
        else:
            name = record[NAME]
            attrs = {"coldstart.kind": record[KIND], **record[ATTRS]}
            if incomplete:
                # Still running at ready (a background preload, say): its span ends at ready.
                attrs["coldstart.incomplete"] = True
        tid = record[THREAD]
        if tid != main_tid:
            attrs["thread.id"] = tid
            # A record may name its thread itself: thread ids are reused once a thread ends.
            attrs.setdefault("thread.name", thread_names.get(tid, str(tid)))
        span = _child(tracer, name, parent, to_ns(start), attrs)
        spans[id(record)] = span
        if is_import:
            _end_with_error(span, record[ERROR], to_ns(end))
        else:
            _end_record(span, record[ERROR], to_ns(end))
    return kept_imports


def make_live_import_handler(tracer: Tracer, suppress: Callable[[], Any]) -> Callable[..., Any]:
    """A handler for imports after ready: each becomes a span under whatever span is current."""

    def live_import(wrapped: Callable[..., Any], name: str, args: tuple, kwargs: dict) -> Any:
        with suppress():
            span = tracer.start_span(IMPORT_PREFIX + name, attributes={"coldstart.phase": "after_ready"})
        token = otel_context.attach(trace.set_span_in_context(span))
        error = None
        module = None
        try:
            module = wrapped(*args, **kwargs)
            return module
        except BaseException as exc:
            error = (type(exc).__qualname__, str(exc))
            raise
        finally:
            otel_context.detach(token)
            with suppress():
                span.set_attributes(
                    _import_attributes(name, module, len(args) > 1 and args[1] is _gcd_import())
                )
                _end_with_error(span, error, None)

    return live_import


def _gcd_import() -> Any:
    import sys

    return sys.modules["_frozen_importlib"]._gcd_import
