"""``BaseInstrumentor`` classes for the ``opentelemetry_instrumentor`` entry points."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from otel_coldstart.launch import arming, lazy_instrumentors
from otel_coldstart.record import imports


class ImportInstrumentor(BaseInstrumentor):
    """Records every module import of the cold start as a span (``import <module>``)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        arming.arm("launcher", record_imports=True)

    def _uninstrument(self, **kwargs: Any) -> None:
        imports.uninstall()


class ServiceInstrumentor(BaseInstrumentor):
    """Service inits, tier phases, waits and lazy loads as spans: ``otel_coldstart.library.services`` and
    ``otel_coldstart.library.lazy``, ``svcs`` containers when installed, and the callables named in
    ``OTEL_PYTHON_COLDSTART_SERVICE_FACTORIES``. Each is wrapped when its module is imported, and
    the instrumentation itself (wrapt and all) is loaded only then."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        provider = kwargs.get("tracer_provider")

        def install() -> None:
            from otel_coldstart.record import service_tracing

            service_tracing.install(provider)

        lazy_instrumentors.services_when_imported(install)

    def _uninstrument(self, **kwargs: Any) -> None:
        from otel_coldstart.record import service_tracing

        service_tracing.uninstall()
