"""``BaseInstrumentor`` classes for the ``opentelemetry_instrumentor`` entry points."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from otel_coldstart import imports, lifecycle


class ImportInstrumentor(BaseInstrumentor):
    """Records every module import of the cold start as a span (``import <module>``)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        lifecycle.arm("launcher")

    def _uninstrument(self, **kwargs: Any) -> None:
        imports.uninstall()
