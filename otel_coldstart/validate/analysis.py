"""Figures derived from one linked cold-start trace: what the targets and the report read.

One pass over the tree (``Span.walk`` is iterative), no per-span path building: a 100,000-span
trace, or a 100,000-deep chain, is summarised in linear time.
"""

from __future__ import annotations

import dataclasses
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

from otel_coldstart import conventions as cv
from otel_coldstart.validate.model import Span, Trace, union_ns
from otel_coldstart.validate.paths import is_stdlib_path

IMPORT_PREFIX = cv.IMPORT_SPAN_PREFIX


def is_import(span: Span) -> bool:
    return span.attributes.get(cv.KIND) == cv.KIND_IMPORT or span.name.startswith(IMPORT_PREFIX)


def is_service(span: Span) -> bool:
    return span.attributes.get(cv.KIND) == cv.KIND_SERVICE


def module_name(span: Span) -> str:
    return str(span.attributes.get(cv.MODULE_NAME) or span.name.removeprefix(IMPORT_PREFIX))


def service_name(span: Span) -> str:
    return str(span.attributes.get(cv.SERVICE_NAME) or span.name.removeprefix(cv.INIT_SPAN_PREFIX))


@dataclass
class ImportFigure:
    module: str
    self_ns: int
    cumulative_ns: int
    size: int | None
    #: Name of the span that imported it: another ``import x``, a phase, a service init...
    parent_name: str
    failed: bool
    memory_delta: int | None = None
    kind: str = ""
    #: Inside a service init, a lazy load or the background preload tier (not the plain main path).
    under: str = ""
    span: Span | None = field(default=None, repr=False, compare=False)

    @property
    def importer(self) -> str:
        return self.parent_name.removeprefix(IMPORT_PREFIX)

    @property
    def top_level(self) -> bool:
        return not self.parent_name.startswith(IMPORT_PREFIX)


@dataclass
class ServiceFigure:
    name: str
    tier: str
    duration_ns: int
    memory_delta: int | None
    failed: bool
    start_ns: int = 0
    end_ns: int = 0
    dependencies: tuple[str, ...] = ()
    #: Ran on a thread other than the main one (the instrumentation adds ``thread.id`` then).
    threaded: bool = False
    #: Inside the background "optional preload" tier phase.
    in_preload: bool = False
    span: Span | None = field(default=None, repr=False, compare=False)


@dataclass
class MemoryConsumer:
    kind: str  # "service" or "import"
    name: str
    rss_delta: int


@dataclass
class MemoryPoint:
    label: str
    offset_ns: int
    rss: int | None
    peak_rss: int | None


@dataclass
class MainPhase:
    """How much of the main phase the trace explains: the main thread's top-level imports, service
    and other records, and the program's own code between them (``coldstart.code`` spans)."""

    duration_ns: int
    explained_ns: int
    import_ns: int
    code_ns: int
    #: The code spans, longest first: (name, duration, hot functions).
    code: list[tuple[str, int, list[str]]] = field(default_factory=list)


def _main_phase(root: Span) -> tuple[Span | None, MainPhase | None]:
    main = next(
        (c for c in root.children if c.attributes.get(cv.PHASE) == cv.PHASE_MAIN or c.name == cv.MAIN_SPAN),
        None,
    )
    if main is None:
        return None, None
    on_main = [c for c in main.children if cv.THREAD_ID not in c.attributes]

    def covered(spans: list[Span]) -> int:
        return union_ns([(max(c.start_ns, main.start_ns), min(c.end_ns, main.end_ns)) for c in spans])

    code = [c for c in on_main if c.kind == cv.KIND_CODE]
    hot = [
        (c.name, c.duration_ns, [str(h) for h in c.attributes.get(cv.CODE_HOT) or ()])
        for c in sorted(code, key=lambda c: c.duration_ns, reverse=True)
    ]
    return main, MainPhase(
        duration_ns=main.duration_ns,
        explained_ns=covered(on_main),
        import_ns=covered([c for c in on_main if is_import(c)]),
        code_ns=covered(code),
        code=hot,
    )


def _bundle(main: Span | None, imports: list[ImportFigure]) -> tuple[int, int, int]:
    """(bundle, stdlib, native) bytes of the imports the main phase made (all, without one)."""
    inside = {id(s) for s in main.walk()} if main is not None else None
    bundle = stdlib = native = 0
    for figure in imports:
        if figure.size is None or (inside is not None and id(figure.span) not in inside):
            continue
        path = str(figure.span.attributes.get(cv.CODE_FILE_PATH, "")) if figure.span is not None else ""
        if figure.kind == cv.MODULE_KIND_EXTENSION:
            native += figure.size
        elif is_stdlib_path(path):
            stdlib += figure.size
        else:
            bundle += figure.size
    return bundle, stdlib, native


@dataclass
class Summary:
    trace: Trace
    cold_start_ns: int
    boot_ns: int
    import_count: int
    imports_recorded: int
    top_level_import_ns: int
    bundle_bytes: int
    imports: list[ImportFigure] = field(default_factory=list)
    failed_imports: list[str] = field(default_factory=list)
    services: list[ServiceFigure] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    rss_at_ready_bytes: int | None = None
    memory_points: list[MemoryPoint] = field(default_factory=list)
    #: Top-level phases (children of the root): boot, launcher, main.
    phases: dict[str, int] = field(default_factory=dict)
    #: Tier phases (critical, optional preload): duration of each.
    tiers: dict[str, int] = field(default_factory=dict)
    launcher_ns: int = 0
    #: Root start (process creation) -> end of the critical tier; None without a critical tier.
    critical_ready_ns: int | None = None
    ready_trigger: str = ""
    span_count: int = 0
    #: Bytes of standard-library and native-extension modules imported in the main phase: reported
    #: beside the bundle, not counted in it.
    stdlib_bytes: int = 0
    native_bytes: int = 0
    main_phase: MainPhase | None = None
    #: The trace's spans were dropped (``compact``): only the root is left, and ``imports``
    #: holds just the modules that targets name.
    compact: bool = False
    #: Set by ``compact``: this cold start's import times per module (names, self ns, cumulative
    #: ns) for the fleet table, once ``imports`` are dropped; released when the table is built
    #: (``fleet.section(..., release=True)``).
    module_times: tuple[tuple[str, ...], array, array] | None = None

    @property
    def mean_service_init_ns(self) -> float | None:
        if not self.services:
            return None
        return sum(s.duration_ns for s in self.services) / len(self.services)

    def slowest_imports(self, n: int = 10, by: str = "self") -> list[ImportFigure]:
        key = (lambda f: f.self_ns) if by == "self" else (lambda f: f.cumulative_ns)
        return sorted(self.imports, key=key, reverse=True)[:n]

    def memory_consumers(self, n: int = 10) -> list[MemoryConsumer]:
        """Services and imports with the largest RSS growth while they ran (largest first)."""
        found = [
            MemoryConsumer("service", s.name, s.memory_delta) for s in self.services if s.memory_delta
        ] + [MemoryConsumer("import", f.module, f.memory_delta) for f in self.imports if f.memory_delta]
        return sorted((c for c in found if c.rss_delta > 0), key=lambda c: c.rss_delta, reverse=True)[:n]


def _int_attr(span: Span, key: str) -> int | None:
    return _as_int(span.attributes.get(key))


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _context(span: Span, root: Span, parent_context: dict[int, str]) -> str:
    """What a span runs inside: "service", "lazy_load", "preload" or "" (the plain start-up path)."""
    parent = span.parent
    if parent is None or parent is root:
        return ""
    inherited = parent_context.get(id(parent), "")
    if inherited:
        return inherited
    if is_service(parent):
        return "service"
    if parent.kind == cv.KIND_LAZY_LOAD:
        return "lazy_load"
    if parent.kind == cv.KIND_PHASE and parent.attributes.get(cv.PHASE) == cv.PHASE_PRELOAD:
        return "preload"
    return ""


def _memory_points(root: Span) -> list[MemoryPoint]:
    points = []
    for event in root.events:
        if event.name != cv.MEMORY_SNAPSHOT_EVENT:
            continue
        points.append(
            MemoryPoint(
                label=str(event.attributes.get(cv.MEMORY_LABEL, "")),
                offset_ns=max(0, event.time_ns - root.start_ns),
                rss=_as_int(event.attributes.get(cv.MEMORY_RSS)),
                peak_rss=_as_int(event.attributes.get(cv.MEMORY_PEAK_RSS)),
            )
        )
    return points


def summarize(trace: Trace) -> Summary:
    root = trace.root
    if root is None:
        raise ValueError("summarize() needs a linked trace (tree.link)")
    phases: dict[str, int] = {}
    tiers: dict[str, int] = {}
    imports: list[ImportFigure] = []
    failed: list[str] = []
    services: list[ServiceFigure] = []
    top_level_ns = 0
    critical_end: int | None = None
    context: dict[int, str] = {}
    count = 0
    for span in root.walk():
        count += 1
        if span is root:
            continue
        where = _context(span, root, context)
        if where:
            context[id(span)] = where
        if span.kind == cv.KIND_PHASE or (
            span.parent is root
            and span.name.startswith(cv.PHASE_SPAN_PREFIX)
            and span.kind != cv.KIND_INVOCATION
        ):
            phase = str(span.attributes.get(cv.PHASE) or span.name.removeprefix(cv.PHASE_SPAN_PREFIX))
            if span.parent is root:
                phases[phase] = phases.get(phase, 0) + span.duration_ns
            else:
                tiers[phase] = tiers.get(phase, 0) + span.duration_ns
                if phase == cv.PHASE_CRITICAL and span.end_ns <= root.end_ns:
                    critical_end = max(critical_end or span.end_ns, span.end_ns)
        if is_import(span):
            size = _int_attr(span, cv.MODULE_SIZE)
            is_failed = span.status_code == 2 or span.attributes.get(cv.IMPORT_OUTCOME) == cv.OUTCOME_ERROR
            figure = ImportFigure(
                module=module_name(span),
                self_ns=span.self_ns,
                cumulative_ns=span.duration_ns,
                size=size,
                parent_name=span.parent.name if span.parent is not None else "",
                failed=is_failed,
                memory_delta=_int_attr(span, cv.MEMORY_RSS_DELTA),
                kind=str(span.attributes.get(cv.MODULE_KIND, "")),
                under=where,
                span=span,
            )
            imports.append(figure)
            if is_failed:
                failed.append(figure.module)
            if figure.top_level:
                top_level_ns += span.duration_ns
        elif is_service(span):
            deps = span.attributes.get(cv.SERVICE_DEPENDENCIES) or ()
            services.append(
                ServiceFigure(
                    name=service_name(span),
                    tier=str(span.attributes.get(cv.SERVICE_TIER, "")),
                    duration_ns=span.duration_ns,
                    memory_delta=_int_attr(span, cv.MEMORY_RSS_DELTA),
                    failed=span.status_code == 2,
                    start_ns=span.start_ns,
                    end_ns=span.end_ns,
                    dependencies=tuple(str(d) for d in deps)
                    if isinstance(deps, (list, tuple))
                    else (str(deps),),
                    threaded=cv.THREAD_ID in span.attributes,
                    in_preload=where == "preload",
                    span=span,
                )
            )
    # The recorder counts every import even when a minimum-duration filter dropped short spans.
    recorded_count = _int_attr(root, cv.IMPORTS_COUNT)
    main, main_phase = _main_phase(root)
    bundle, stdlib_bytes, native_bytes = _bundle(main, imports)
    points = _memory_points(root)
    peak = _int_attr(root, cv.MEMORY_PEAK_RSS)
    if peak is None:
        # Older or foreign traces: the snapshots on the root still tell the peak.
        candidates = [v for p in points if (v := p.peak_rss or p.rss)]
        peak = max(candidates) if candidates else None
    at_ready = _int_attr(root, cv.MEMORY_RSS_AT_READY)
    if at_ready is None and points:
        at_ready = points[-1].rss
    boot_ns = phases.get(cv.PHASE_BOOT, 0)
    if not boot_ns:
        boot_ns = _int_attr(root, cv.BOOT_DURATION_NS) or 0
    return Summary(
        trace=trace,
        cold_start_ns=root.duration_ns,
        boot_ns=boot_ns,
        import_count=max(len(imports), recorded_count or 0),
        imports_recorded=len(imports),
        top_level_import_ns=top_level_ns,
        bundle_bytes=bundle,
        stdlib_bytes=stdlib_bytes,
        native_bytes=native_bytes,
        main_phase=main_phase,
        imports=imports,
        failed_imports=failed,
        services=services,
        peak_memory_bytes=peak,
        rss_at_ready_bytes=at_ready,
        memory_points=points,
        phases=phases,
        tiers=tiers,
        launcher_ns=phases.get(cv.PHASE_LAUNCHER, 0),
        critical_ready_ns=None if critical_end is None else max(0, critical_end - root.start_ns),
        ready_trigger=str(root.attributes.get(cv.READY_TRIGGER, "")),
        span_count=count,
    )


def module_times(imports: list[ImportFigure]) -> tuple[tuple[str, ...], array, array]:
    """(modules, self ns, cumulative ns) of one cold start: a module imported several times (one
    trace of several processes) counts its summed time once."""
    own: dict[str, list[int]] = {}
    for figure in imports:
        pair = own.get(figure.module)
        if pair is None:
            own[figure.module] = [figure.self_ns, figure.cumulative_ns]
        else:
            pair[0] += figure.self_ns
            pair[1] += figure.cumulative_ns
    return tuple(own), array("q", (p[0] for p in own.values())), array("q", (p[1] for p in own.values()))


def compact(summary: Summary, keep_import: Callable[[str], bool]) -> Summary:
    """The summary without the trace's spans: what a fleet run keeps of each cold start.

    Kept: every figure the judgement, the distribution and the trace list read (a copy of the
    root, and of the first-invocation span a Lambda trace has), the imports ``keep_import``
    accepts (those a module target names) and the per-module times for the fleet table. The span
    tree goes, and with it about a kilobyte per span.
    """
    if summary.compact:
        return summary
    trace = summary.trace
    root = None if trace.root is None else _bare(trace.root)
    # faas.split reads the first-invocation span from the trace's spans.
    invocations = [
        _bare(span)
        for span in trace.spans
        if span.name == cv.LAMBDA_FIRST_INVOCATION_SPAN and span is not trace.root
    ]
    bare_trace = Trace(
        trace.trace_id, ([root] if root else []) + invocations, trace.source, trace.warnings, root
    )
    return dataclasses.replace(
        summary,
        trace=bare_trace,
        imports=[dataclasses.replace(f, span=None) for f in summary.imports if keep_import(f.module)],
        services=[dataclasses.replace(s, span=None) for s in summary.services],
        compact=True,
        module_times=module_times(summary.imports),
    )


def _bare(span: Span) -> Span:
    return dataclasses.replace(span, children=[], parent=None)
