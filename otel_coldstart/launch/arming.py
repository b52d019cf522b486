"""Arming the recorder, the same from every launch path, with what the launch environment adds.

Every path (``opentelemetry-instrument``'s distro, configurator and instrumentor, the ``.pth``
hook, ``otel_coldstart.start()``) starts recording through ``arm``. ``deliver/lifecycle`` owns the
timeline, the hooks and the exit; what only a launch environment needs (a Lambda sandbox's Runtime
API watcher) is added here, so that lifecycle never imports the launch code that drives it.
"""

from __future__ import annotations

import os

from otel_coldstart.deliver import lifecycle
from otel_coldstart.deliver.lambda_sandbox import RUNTIME_API_ENV
from otel_coldstart.record import timeline


def arm(origin: str, record_imports: bool | None = None) -> None:
    """Start recording (idempotent, cheap: it runs on the start-up path). ``record_imports``
    defaults to "unless ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` names our import instrumentor"."""
    if record_imports is None:
        record_imports = not lifecycle.imports_disabled()
    lifecycle.arm(origin, record_imports=record_imports)
    if os.environ.get(RUNTIME_API_ENV):
        with timeline.suppressed():  # our module, not the application's start-up
            from otel_coldstart.launch import faas_lambda

            faas_lambda.install(lifecycle.settings().lambda_flush_timeout_s)
