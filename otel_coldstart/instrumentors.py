"""``BaseInstrumentor`` classes for the ``opentelemetry_instrumentor`` entry points."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from otel_coldstart import imports, lazy_instrumentors, lifecycle


class ImportInstrumentor(BaseInstrumentor):
    """Records every module import of the cold start as a span (``import <module>``)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        lifecycle.arm("launcher")

    def _uninstrument(self, **kwargs: Any) -> None:
        imports.uninstall()


class ServiceInstrumentor(BaseInstrumentor):
    """Service inits, tier phases, waits and lazy loads as spans: ``otel_coldstart.services`` and
    ``otel_coldstart.lazy``, ``svcs`` containers when installed, and the callables named in
    ``OTEL_PYTHON_COLDSTART_SERVICE_FACTORIES``. Each is wrapped when its module is imported, and
    the instrumentation itself (wrapt and all) is loaded only then."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        provider = kwargs.get("tracer_provider")

        def install() -> None:
            from otel_coldstart import service_tracing

            service_tracing.install(provider)

        lazy_instrumentors.services_when_imported(install)

    def _uninstrument(self, **kwargs: Any) -> None:
        from otel_coldstart import service_tracing

        service_tracing.uninstall()
