"""Turning the frozen timeline into real OpenTelemetry spans with explicit timestamps.

Runs after the ready moment only. Span shape (all in one trace)::

    coldstart                       process creation -> ready
    ├── coldstart.boot              process creation -> our hook installed (interpreter start)
    │   └── coldstart.wrapper       a launcher's wrapper process before its exec
    ├── coldstart.launcher          hook installed -> launcher done (other instrumentors, configurator)
    │   └── import x ...
    └── coldstart.main              launcher done (or start()) -> ready: the application's own start-up
        └── import y
            └── import y.z
"""

from __future__ import annotations

from otel_coldstart import conventions as cv
from otel_coldstart.record import imports, module_info
from otel_coldstart.record.timeline import AnyRecord, ImportRecord, Timeline

TYPE_CHECKING = False
if TYPE_CHECKING:  # at exit the trace file is built without typing or OpenTelemetry (light_trace.py)
    from collections.abc import Callable, Iterable
    from typing import Any

    from opentelemetry.trace import Span, Tracer


class SdkApi:
    """What building needs of a tracer, for an OpenTelemetry ``Tracer``. A tracer that has a
    ``build_api`` of its own (``light_trace.LightTracer``: the trace file at exit without the SDK)
    is used through that instead, so this module imports the OpenTelemetry API only here."""

    def __init__(self, tracer: Tracer) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import Status, StatusCode

        self._tracer, self._context, self._trace = tracer, context, trace
        self._status, self._error = Status, StatusCode.ERROR

    def root(self, name: str, start_ns: int, attrs: dict[str, Any], parent_ids: Any, link_attrs: Any) -> Span:
        trace = self._trace
        links = None
        if parent_ids is not None:
            parent = trace.SpanContext(*parent_ids, is_remote=True, trace_flags=trace.TraceFlags(1))
            links = [trace.Link(parent, link_attrs)]
        return self._tracer.start_span(
            name, context=self._context.Context(), start_time=start_ns, attributes=attrs, links=links
        )

    def child(self, name: str, parent: Span, start_ns: int, attrs: dict[str, Any]) -> Span:
        ctx = self._trace.set_span_in_context(parent, self._context.Context())
        return self._tracer.start_span(name, context=ctx, start_time=start_ns, attributes=attrs)

    def set_error(self, span: Span, description: str) -> None:
        span.set_status(self._status(self._error, description))


def _memory_events(root: Span, snapshots: list[Any], to_ns: Callable[[int], int]) -> None:
    previous = None
    for snapshot in snapshots:
        attrs: dict[str, Any] = {
            cv.MEMORY_LABEL: snapshot.label,
            cv.MEMORY_RSS: snapshot.rss,
            cv.MEMORY_VMS: snapshot.vms,
            cv.MEMORY_PEAK_RSS: snapshot.peak_rss,
        }
        if previous is not None and snapshot.mono_ns > previous.mono_ns:
            rate = (snapshot.rss - previous.rss) * 1e9 / (snapshot.mono_ns - previous.mono_ns)
            attrs[cv.MEMORY_GROWTH_RATE] = rate
        root.add_event(cv.MEMORY_SNAPSHOT_EVENT, attrs, to_ns(snapshot.mono_ns))
        previous = snapshot


def _import_attributes(
    name: str,
    spec: Any,
    file: Any,
    via_import_module: bool,
    described: tuple[str, str | None, int | None] | None = None,
) -> dict[str, Any]:
    """``described``: ``module_info.describe(spec, file)`` when the caller already has it (a stat)."""
    kind, path, size = described if described is not None else module_info.describe(spec, file)
    attrs: dict[str, Any] = {
        cv.KIND: cv.KIND_IMPORT,
        cv.MODULE_NAME: name,
        cv.MODULE_KIND: kind,
        cv.IMPORT_API: cv.IMPORT_API_IMPORT_MODULE if via_import_module else cv.IMPORT_API_STATEMENT,
    }
    if path is not None:
        attrs[cv.CODE_FILE_PATH] = path
    if size is not None:
        attrs[cv.MODULE_SIZE] = size
    return attrs


def _end_with_error(api: Any, span: Span, error: tuple[str, str] | None, end_ns: int | None) -> None:
    span.set_attribute(cv.IMPORT_OUTCOME, cv.OUTCOME_OK if error is None else cv.OUTCOME_ERROR)
    _end_record(api, span, error, end_ns)


def _end_record(api: Any, span: Span, error: tuple[str, str] | None, end_ns: int | None) -> None:
    if error is not None:
        exc_type, message = error
        span.add_event(
            cv.EXCEPTION_EVENT, {cv.EXCEPTION_TYPE: exc_type, cv.EXCEPTION_MESSAGE: message}, end_ns
        )
        api.set_error(span, f"{exc_type}: {message}")
    span.end(end_time=end_ns)


def build(
    timeline: Timeline,
    tracer: Tracer,
    process_start_ns: int,
    min_import_ns: int = 0,
    extra_root_attributes: dict[str, Any] | None = None,
    parent_ids: tuple[int, int] | None = None,
) -> Span:
    """Emit the cold-start trace through ``tracer``; returns the (ended) root span.

    ``parent_ids``: the (trace id, root span id) of the parent process's cold start, linked from
    the root of a forked or spawned child's.
    """
    api = getattr(tracer, "build_api", None) or SdkApi(tracer)
    to_ns = timeline.to_epoch_ns
    hook_ns = to_ns(timeline.hook_installed_ns)
    ready_mono = timeline.ready_ns if timeline.ready_ns is not None else timeline.hook_installed_ns
    ready_ns = to_ns(ready_mono)
    # The process clock has a coarse resolution (clock ticks): never let boot end before it starts.
    start_ns = min(process_start_ns, hook_ns)

    imports = timeline.imports
    # Once per import: the bundle size here, the span's attributes in _emit (each is a stat).
    described = {id(record): module_info.describe(record.spec, record.file) for record in imports}
    bundle = sum(size or 0 for _, _, size in described.values())
    root_attrs: dict[str, Any] = {
        cv.KIND: cv.KIND_ROOT,
        cv.ORIGIN: timeline.origin,
        cv.READY_TRIGGER: timeline.ready_trigger or cv.TRIGGER_UNKNOWN,
        cv.IMPORTS_COUNT: len(imports),
        cv.IMPORTS_FAILED: sum(1 for r in imports if r.error is not None),
        cv.BUNDLE_SIZE: bundle,
        cv.BOOT_DURATION_NS: hook_ns - start_ns,
    }
    snapshots = timeline.memory_snapshots
    if snapshots:
        at_ready = snapshots[-1]
        root_attrs[cv.MEMORY_RSS_AT_READY] = at_ready.rss
        root_attrs[cv.MEMORY_PEAK_RSS] = max(s.peak_rss for s in snapshots)
    root_attrs.update(timeline.root_attributes)
    if extra_root_attributes:
        root_attrs.update(extra_root_attributes)
    link_attrs = {cv.LINK_KIND: cv.LINK_PARENT_PROCESS}
    root = api.root(cv.ROOT_SPAN, start_ns, root_attrs, parent_ids, link_attrs)
    _memory_events(root, snapshots, to_ns)

    boot = api.child(
        cv.BOOT_SPAN,
        root,
        start_ns,
        {
            cv.KIND: cv.KIND_PHASE,
            cv.PHASE: cv.PHASE_BOOT,
            cv.PREHOOK_MODULE_COUNT: len(timeline.prehook_modules),
            cv.PREHOOK_MODULES: list(timeline.prehook_modules),
        },
    )
    boot.end(end_time=hook_ns)

    launcher_done = timeline.marks.get("launcher_done")
    phases: list[tuple[Span, int, int]] = []
    main_start = timeline.hook_installed_ns
    if launcher_done is not None and launcher_done <= ready_mono:
        launcher = api.child(
            cv.LAUNCHER_SPAN, root, hook_ns, {cv.KIND: cv.KIND_PHASE, cv.PHASE: cv.PHASE_LAUNCHER}
        )
        phases.append((launcher, timeline.hook_installed_ns, launcher_done))
        main_start = launcher_done
    main = api.child(cv.MAIN_SPAN, root, to_ns(main_start), {cv.KIND: cv.KIND_PHASE, cv.PHASE: cv.PHASE_MAIN})
    phases.append((main, main_start, ready_mono))

    def phase_for(start_mono: int) -> Span:
        if start_mono < timeline.hook_installed_ns:
            return boot  # a launcher's wrapper process, before this interpreter ran our hook
        for span, begin, end in phases:
            if begin <= start_mono < end:
                return span
        return phases[-1][0] if start_mono >= phases[-1][1] else phases[0][0]

    # Parents start before their children, so emitting in start order creates parents first.
    records: list[AnyRecord] = sorted([*imports, *timeline.records], key=lambda r: r.start)

    # A wrapper's record starts at the process's creation, read from the same coarse clock as the
    # root's start but at another moment: never let it start microseconds before its root.
    offset = timeline.wall_anchor_ns - timeline.mono_anchor_ns  # to_epoch_ns, inlined: twice a span

    def clamped(mono_ns: int) -> int:
        epoch_ns = mono_ns + offset
        return epoch_ns if epoch_ns > start_ns else start_ns

    emitted = _emit(
        api, records, phase_for, ready_mono, min_import_ns, timeline.thread_names, clamped, described
    )
    for span, _, end in phases:
        span.end(end_time=to_ns(end))
    root.set_attribute(cv.IMPORTS_RECORDED, emitted)
    root.end(end_time=ready_ns)
    return root


def _emit(
    api: Any,
    records: Iterable[AnyRecord],
    phase_for: Callable[[int], Span],
    ready_mono: int,
    min_import_ns: int,
    thread_names: dict[int, str],
    to_ns: Callable[[int], int],
    described: dict[int, tuple[str, str | None, int | None]] | None = None,
) -> int:
    """Emit import and other records; returns how many import spans were kept.

    ``described``: ``module_info.describe`` of each import record, by ``id``, if known."""
    described = described or {}
    spans: dict[int, Span] = {}
    main_tid = next(iter(thread_names), None)
    kept_imports = 0
    for record in records:
        start = record.start
        if start >= ready_mono:
            continue
        end = record.end
        incomplete = end == 0 or end > ready_mono
        if incomplete:
            end = ready_mono
        is_import = isinstance(record, ImportRecord)
        if is_import and min_import_ns and end - start < min_import_ns:
            continue
        parent_record = record.parent
        parent = spans.get(id(parent_record)) if parent_record is not None else None
        if parent is None:
            parent = phase_for(start)
        if isinstance(record, ImportRecord):
            name = cv.IMPORT_SPAN_PREFIX + record.name
            attrs = _import_attributes(
                record.name, record.spec, record.file, record.via_import_module, described.get(id(record))
            )
            if record.rss_delta is not None:
                attrs[cv.MEMORY_RSS_DELTA] = record.rss_delta
            if incomplete:
                attrs[cv.IMPORT_INCOMPLETE] = True
            kept_imports += 1
        else:
            name = record.name
            attrs = {cv.KIND: record.kind, **record.attrs}
            if incomplete:
                # Still running at ready (a background preload, say): its span ends at ready.
                attrs[cv.INCOMPLETE] = True
        tid = record.thread
        if tid != main_tid:
            attrs[cv.THREAD_ID] = tid
            # A record may name its thread itself: thread ids are reused once a thread ends.
            attrs.setdefault(cv.THREAD_NAME, thread_names.get(tid, str(tid)))
        span = api.child(name, parent, to_ns(start), attrs)
        spans[id(record)] = span
        if is_import:
            _end_with_error(api, span, record.error, to_ns(end))
        else:
            _end_record(api, span, record.error, to_ns(end))
    return kept_imports


class LiveImports:
    """Imports after ready (``imports.LiveHandler``): each a span under whatever span is current.

    Everything here is our own work and guarded: whatever fails, the import itself is untouched.
    """

    def __init__(self, tracer: Tracer, suppress: Callable[[], Any]) -> None:
        from opentelemetry import context, trace

        self._tracer = tracer
        self._suppress = suppress
        self._api = SdkApi(tracer)
        self._context, self._trace = context, trace

    def start(self, name: str, via_import_module: bool) -> Any:
        try:
            with self._suppress():
                span = self._tracer.start_span(
                    cv.IMPORT_SPAN_PREFIX + name, attributes={cv.PHASE: cv.PHASE_AFTER_READY}
                )
            return span, name, via_import_module, self._context.attach(self._trace.set_span_in_context(span))
        except Exception:
            return None

    def end(self, handle: Any, module: object, error: BaseException | None) -> None:
        if handle is None:
            return
        span, name, via_import_module, token = handle
        try:
            self._context.detach(token)
            with self._suppress():
                spec, file = module_info.spec_and_file(module) if error is None else (None, None)
                span.set_attributes(_import_attributes(name, spec, file, via_import_module))
                _end_with_error(self._api, span, None if error is None else imports._describe(error), None)
        except Exception:
            pass


def make_live_import_handler(tracer: Tracer, suppress: Callable[[], Any]) -> LiveImports:
    """A handler for imports after ready: each becomes a span under whatever span is current."""
    return LiveImports(tracer, suppress)
