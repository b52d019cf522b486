"""What ``opentelemetry-instrument`` loads: our distro, configurator and post-instrument hook.

The launcher imports this module while loading the distro entry point; that is the earliest
moment we can run, so the recorder starts right here, before anything else of the launcher's
remaining work. Everything that happened before is reported as the ``coldstart.boot`` span.
"""

from __future__ import annotations

import os
from typing import Any

from otel_coldstart import lifecycle

lifecycle.arm("launcher", record_imports=not lifecycle.imports_disabled())

from opentelemetry.instrumentation.distro import BaseDistro  # noqa: E402  (after arming, on purpose)

#: The stock distro's defaults, except the OTLP protocol: http/protobuf is what the OTLP
#: specification recommends as the default, and it spares the app the grpc import after ready.
DEFAULTS = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    # With the stock distro installed beside us, make sure our configurator is the one that runs.
    "OTEL_PYTHON_CONFIGURATOR": "otel_coldstart",
}


class ColdstartDistro(BaseDistro):
    """The ``otel_coldstart`` distro: environment defaults; the recorder is already running."""

    def _configure(self, **kwargs: Any) -> None:
        for key, value in DEFAULTS.items():
            os.environ.setdefault(key, value)


class ColdstartConfigurator:
    """The ``otel_coldstart`` configurator.

    Unlike the SDK's configurator it sets nothing up now: the SDK is configured from the same
    standard environment variables right after the ready moment (see ``sdk_setup.py``).
    """

    def configure(self, **kwargs: Any) -> None:
        lifecycle.arm("launcher", record_imports=not lifecycle.imports_disabled())
        lifecycle.request_sdk(kwargs.get("auto_instrumentation_version"))
