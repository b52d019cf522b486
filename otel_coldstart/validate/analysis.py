"""Figures derived from one linked cold-start trace: what the targets and the report read."""

from __future__ import annotations

from dataclasses import dataclass, field

from otel_coldstart.validate.model import Span, Trace

BOOT_SPAN = "coldstart.boot"
IMPORT_PREFIX = "import "


def is_import(span: Span) -> bool:
    return span.attributes.get("coldstart.kind") == "import" or span.name.startswith(IMPORT_PREFIX)


def is_service(span: Span) -> bool:
    return span.attributes.get("coldstart.kind") == "service"


@dataclass
class ImportFigure:
    module: str
    self_ns: int
    cumulative_ns: int
    size: int | None
    path: tuple[str, ...]
    failed: bool


@dataclass
class ServiceFigure:
    name: str
    tier: str
    duration_ns: int
    memory_delta: int | None
    failed: bool


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
    phases: dict[str, int] = field(default_factory=dict)

    @property
    def mean_service_init_ns(self) -> float | None:
        if not self.services:
            return None
        return sum(s.duration_ns for s in self.services) / len(self.services)

    def slowest_imports(self, n: int = 10, by: str = "self") -> list[ImportFigure]:
        key = (lambda f: f.self_ns) if by == "self" else (lambda f: f.cumulative_ns)
        return sorted(self.imports, key=key, reverse=True)[:n]


def _int_attr(span: Span, key: str) -> int | None:
    value = span.attributes.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def summarize(trace: Trace) -> Summary:
    root = trace.root
    if root is None:
        raise ValueError("summarize() needs a linked trace (tree.link)")
    boot_ns = 0
    phases: dict[str, int] = {}
    imports: list[ImportFigure] = []
    failed: list[str] = []
    services: list[ServiceFigure] = []
    top_level_ns = 0
    sizes = 0
    for span in root.walk():
        if span is root:
            continue
        if span.name == BOOT_SPAN:
            boot_ns = span.duration_ns
        if span.attributes.get("coldstart.kind") == "phase":
            phases[str(span.attributes.get("coldstart.phase", span.name))] = span.duration_ns
        if is_import(span):
            module = str(span.attributes.get("coldstart.module.name") or span.name[len(IMPORT_PREFIX) :])
            size = _int_attr(span, "coldstart.module.size")
            is_failed = span.status_code == 2 or span.attributes.get("coldstart.import.outcome") == "error"
            imports.append(ImportFigure(module, span.self_ns, span.duration_ns, size, span.path(), is_failed))
            if is_failed:
                failed.append(module)
            if span.parent is None or not is_import(span.parent):
                top_level_ns += span.duration_ns
            sizes += size or 0
        elif is_service(span):
            services.append(
                ServiceFigure(
                    name=str(span.attributes.get("coldstart.service.name", span.name)),
                    tier=str(span.attributes.get("coldstart.service.tier", "")),
                    duration_ns=span.duration_ns,
                    memory_delta=_int_attr(span, "coldstart.memory.rss_delta"),
                    failed=span.status_code == 2,
                )
            )
    # The recorder counts every import even when a minimum-duration filter dropped short spans.
    recorded_count = _int_attr(root, "coldstart.imports.count")
    bundle = _int_attr(root, "coldstart.bundle.size")
    return Summary(
        trace=trace,
        cold_start_ns=root.duration_ns,
        boot_ns=boot_ns,
        import_count=max(len(imports), recorded_count or 0),
        imports_recorded=len(imports),
        top_level_import_ns=top_level_ns,
        bundle_bytes=max(sizes, bundle or 0),
        imports=imports,
        failed_imports=failed,
        services=services,
        peak_memory_bytes=_int_attr(root, "coldstart.memory.peak_rss"),
        phases=phases,
    )
