"""The OpenTelemetry SDK, brought up after the ready moment through its standard configuration.

Importing the SDK and an OTLP exporter costs more than a hundred milliseconds; doing it before
ready would add that to the very start-up we measure. So the configurator only records the wish,
and this module does the work once the cold start is over.
"""

from __future__ import annotations

import atexit
import os
import random
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from otel_coldstart.deliver import light_trace, raw_copy, spans
from otel_coldstart.record import process_role
from otel_coldstart.record.timeline import Timeline
from otel_coldstart.version import __version__


class _Collect(SpanProcessor):
    """Keeps every ended span: the cold-start trace is exported in full, never through a queue
    that drops the oldest spans once it holds 2,048 (the batch processor's default)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class ColdstartIds(IdGenerator):
    """An OpenTelemetry ``IdGenerator`` for the private cold-start provider: the first trace and
    root span get this process's derived ids (children can link to them), the rest are random."""

    def __init__(self) -> None:
        self._derived = process_role.ids_of(os.getpid())
        self._root_pending = 0

    def generate_trace_id(self) -> int:
        derived, self._derived = self._derived, None
        if derived is None:
            return random.getrandbits(128) or 1
        self._root_pending = derived[1]
        return derived[0]

    def is_trace_id_random(self) -> bool:
        return True  # a hash of the process's identity is as uniform as random bits

    def generate_span_id(self) -> int:
        if self._root_pending:
            span_id, self._root_pending = self._root_pending, 0
            return span_id
        return random.getrandbits(64) or 1


@dataclass
class Pipeline:
    resource: Resource
    coldstart_provider: TracerProvider
    collector: _Collect
    exporters: list[SpanExporter]
    #: Providers whose shutdown we run ourselves, bounded, instead of the SDK's unbounded atexit.
    shutdowns: list[Any] = field(default_factory=list)

    def tracer(self) -> trace.Tracer:
        return self.coldstart_provider.get_tracer("otel_coldstart", __version__)

    def take_spans(self) -> list[ReadableSpan]:
        spans, self.collector.spans = self.collector.spans, []
        return spans


def process_attributes() -> dict[str, Any]:
    return raw_copy.process_attributes()


def fixed_resource(attributes: dict[str, Any]) -> Resource:
    """A resource from attributes read earlier (``raw_copy.resource_attributes``), with the SDK's
    defaults but none of its detectors: they read *this* process's environment, and run threads."""
    from opentelemetry.sdk import resources

    base = getattr(resources, "_DEFAULT_RESOURCE", None) or Resource.get_empty()
    resource = base.merge(Resource(attributes))
    if not resource.attributes.get("service.name"):
        resource = resource.merge(Resource({"service.name": "unknown_service"}))
    return resource


_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


def exporter_classes() -> list[type[SpanExporter]]:
    """The trace exporter classes ``OTEL_TRACES_EXPORTER`` names, found as the SDK finds them.

    Not through ``opentelemetry.sdk._configuration``: importing it creates a ``Resource`` (the log
    record's default), whose detectors run on threads, which an exiting 3.12+ interpreter refuses.
    """
    from importlib.metadata import entry_points

    names = os.environ.get("OTEL_TRACES_EXPORTER", "")
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or ""
    ).strip()
    classes = []
    for name in (name.strip() for name in names.split(",")):
        if not name or name.lower() == "none":
            continue
        if name == "otlp":
            if protocol and protocol not in _OTLP_BY_PROTOCOL:
                raise RuntimeError(f"Unsupported OTLP protocol '{protocol}' is configured")
            name = _OTLP_BY_PROTOCOL.get(protocol, "otlp_proto_grpc")
        found = list(entry_points(group="opentelemetry_traces_exporter", name=name))
        if not found:
            raise RuntimeError(
                f"Requested component '{name}' not found in entry point 'opentelemetry_traces_exporter'"
            )
        classes.append(found[0].load())
    return classes


def trace_exporters(timeout_s: float | None = None) -> list[SpanExporter]:
    """The trace exporters the standard ``OTEL_*`` variables configure, as the SDK builds them."""
    exporters = []
    for cls in exporter_classes():
        if timeout_s is None:
            exporters.append(cls())
            continue
        try:
            exporters.append(cls(timeout=max(0.05, timeout_s)))  # type: ignore[call-arg]  # OTLP ones take it
        except TypeError:
            exporters.append(cls())
    return exporters


class _SeededIds(ColdstartIds):
    """``ColdstartIds`` for a raw copy built anywhere: ``light_trace.SeededIds``, the one sequence
    of ids a raw copy gives, with the SDK's trace file or without it."""

    def __init__(self, seed: int | None, root_ids: Any = None) -> None:
        self._ids = light_trace.SeededIds(seed, root_ids)

    def generate_trace_id(self) -> int:
        return self._ids.trace_id()

    def generate_span_id(self) -> int:
        return self._ids.span_id()


def build_spans(
    frozen: Timeline,
    resource: Resource,
    process_start_ns: int,
    min_import_ns: int = 0,
    extra_root_attributes: dict[str, Any] | None = None,
    id_seed: int | None = None,
    root_ids: Any = None,
    parent_ids: Any = None,
) -> list[ReadableSpan]:
    """The cold-start trace of ``frozen``, through a private provider that keeps every span.

    The root span is the last one (it ends last)."""
    collector = _Collect()
    provider = TracerProvider(
        resource=resource,
        sampler=ALWAYS_ON,
        shutdown_on_exit=False,
        id_generator=_SeededIds(id_seed, root_ids),
    )
    provider.add_span_processor(collector)
    spans.build(
        frozen,
        provider.get_tracer("otel_coldstart", __version__),
        process_start_ns,
        min_import_ns=min_import_ns,
        extra_root_attributes=extra_root_attributes,
        parent_ids=tuple(parent_ids) if parent_ids else None,
    )
    return collector.spans


def build_from_raw(raw: dict[str, Any], resource: Resource | None = None) -> list[ReadableSpan]:
    """The spans of a raw copy (``raw_copy.py``): the same trace its process would have built."""
    return build_spans(
        raw_copy.to_timeline(raw),
        resource if resource is not None else fixed_resource(raw.get("resource") or {}),
        int(raw["process_start_ns"]),
        int(raw.get("min_import_ns") or 0),
        raw.get("extra_root_attributes") or None,
        raw.get("id_seed"),
        raw.get("root_ids"),
        raw.get("parent_ids"),
    )


def _take_over_atexit(provider: Any) -> None:
    handler = getattr(provider, "_atexit_handler", None)
    if handler is not None:
        atexit.unregister(handler)
        provider._atexit_handler = None


def setup(auto_instrumentation_version: str | None, configure_globals: bool) -> Pipeline:
    """Configure the global providers (if asked) and a private one for the cold-start trace.

    Only for a process that lives on after ready: the global set-up runs resource detectors on
    threads, which an exiting interpreter refuses (3.12+).
    """
    from opentelemetry.sdk._configuration import _initialize_components

    shutdowns: list[Any] = []
    if configure_globals:
        _initialize_components(
            auto_instrumentation_version=auto_instrumentation_version,
            resource_attributes=process_attributes(),
        )
        for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logger_provider()):
            if hasattr(provider, "shutdown"):
                _take_over_atexit(provider)
                shutdowns.append(provider)
    global_provider = trace.get_tracer_provider()
    resource = getattr(global_provider, "resource", None) or Resource.create(process_attributes())
    if resource.attributes.get("process.pid") != os.getpid():
        # A forked child with the parent's global providers: this cold start is the child's.
        resource = resource.merge(Resource(process_attributes()))

    collector = _Collect()
    provider = TracerProvider(
        resource=resource, sampler=ALWAYS_ON, shutdown_on_exit=False, id_generator=ColdstartIds()
    )
    provider.add_span_processor(collector)
    return Pipeline(
        resource=resource,
        coldstart_provider=provider,
        collector=collector,
        exporters=trace_exporters(),
        shutdowns=shutdowns,
    )


def _logger_provider() -> Any:
    try:
        from opentelemetry._logs import get_logger_provider
    except ImportError:  # pragma: no cover - older API
        return None
    return get_logger_provider()
