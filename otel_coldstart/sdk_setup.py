"""The OpenTelemetry SDK, brought up after the ready moment through its standard configuration.

Importing the SDK and an OTLP exporter costs more than a hundred milliseconds; doing it before
ready would add that to the very start-up we measure. So the configurator only records the wish,
and this module does the work once the cold start is over.
"""

from __future__ import annotations

import atexit
import os
import random
import sys
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from otel_coldstart import process_role
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
    attrs: dict[str, Any] = {
        "process.pid": os.getpid(),
        "process.parent_pid": os.getppid(),
        "process.executable.path": sys.executable,
        "process.executable.name": os.path.basename(sys.executable),
        "process.command_args": list(getattr(sys, "orig_argv", sys.argv)),
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": ".".join(map(str, sys.implementation.version[:3])),
        "process.runtime.description": sys.version,
        "telemetry.distro.name": "otel-coldstart",
        "telemetry.distro.version": __version__,
    }
    if "AWS_LAMBDA_FUNCTION_NAME" in os.environ or "AWS_LAMBDA_RUNTIME_API" in os.environ:
        from otel_coldstart import faas_lambda

        attrs.update(faas_lambda.resource_attributes())
    try:
        import getpass

        attrs["process.owner"] = getpass.getuser()
    except Exception:  # no user database entry (containers with arbitrary uids)
        pass
    try:
        from datetime import datetime, timezone

        from otel_coldstart.process_start import process_start_ns

        created = datetime.fromtimestamp(process_start_ns() / 1e9, tz=timezone.utc)
        attrs["process.creation.time"] = created.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except Exception:
        pass
    return attrs


def _take_over_atexit(provider: Any) -> None:
    handler = getattr(provider, "_atexit_handler", None)
    if handler is not None:
        atexit.unregister(handler)
        provider._atexit_handler = None


def setup(auto_instrumentation_version: str | None, configure_globals: bool) -> Pipeline:
    """Configure the global providers (if asked) and a private one for the cold-start trace."""
    from opentelemetry.sdk._configuration import (
        _get_exporter_names,
        _import_exporters,
        _initialize_components,
    )

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

    exporter_classes = _import_exporters(_get_exporter_names("traces"), [], [])[0]
    collector = _Collect()
    provider = TracerProvider(
        resource=resource, sampler=ALWAYS_ON, shutdown_on_exit=False, id_generator=ColdstartIds()
    )
    provider.add_span_processor(collector)
    return Pipeline(
        resource=resource,
        coldstart_provider=provider,
        collector=collector,
        exporters=[cls() for cls in exporter_classes.values()],
        shutdowns=shutdowns,
    )


def _logger_provider() -> Any:
    try:
        from opentelemetry._logs import get_logger_provider
    except ImportError:  # pragma: no cover - older API
        return None
    return get_logger_provider()
