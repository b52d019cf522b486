"""What ``opentelemetry-instrument`` loads: our distro and configurator.

The recorder normally starts earlier, in the ``otel_coldstart.pth`` hook (``autostart.py``); when
that did not run (a launcher started some other way), importing this module starts it, and
everything before is reported as the ``coldstart.boot`` span.
"""

from __future__ import annotations

import os
from typing import Any

from otel_coldstart.deliver import lifecycle
from otel_coldstart.launch import arming, launch_phases, launcher_warnings, lazy_instrumentors
from otel_coldstart.launch.autostart import DEFAULTS

arming.arm("launcher")

from opentelemetry.instrumentation.distro import BaseDistro  # noqa: E402  (after arming, on purpose)

__all__ = ["DEFAULTS", "ColdstartConfigurator", "ColdstartDistro"]


launcher_warnings.install()


class ColdstartDistro(BaseDistro):
    """The ``otel_coldstart`` distro: environment defaults; the recorder is already running."""

    def _configure(self, **kwargs: Any) -> None:
        for key, value in DEFAULTS.items():
            os.environ.setdefault(key, value)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        """Each instrumentor as an ``instrument <name>`` span; a contrib one only when the app
        first imports its library (``lazy_instrumentors.py``), so an unused one costs nothing."""
        name = entry_point.name
        load = super().load_instrumentor
        if name in launch_phases.OUR_INSTRUMENTORS:
            with launch_phases.instrument_step(name):
                load(entry_point, **kwargs)
            return
        module = getattr(entry_point, "module", None)
        lazy_instrumentors.defer(name, lambda: load(entry_point, **kwargs), module)


class ColdstartConfigurator:
    """The ``otel_coldstart`` configurator.

    Unlike the SDK's configurator it sets nothing up now: the SDK is configured from the same
    standard environment variables right after the ready moment (see ``sdk_setup.py``).
    """

    def configure(self, **kwargs: Any) -> None:
        arming.arm("launcher")
        lifecycle.request_sdk(kwargs.get("auto_instrumentation_version"))
