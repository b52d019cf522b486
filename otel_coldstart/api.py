"""The programmatic entry points: for apps that cannot use ``opentelemetry-instrument``."""

from __future__ import annotations

from otel_coldstart import conventions as cv
from otel_coldstart.deliver import lifecycle
from otel_coldstart.launch import arming


def start(*, configure_sdk: bool = True) -> None:
    """Start recording the cold start now (call it first thing in ``main``).

    Everything since process creation up to this call is reported as ``coldstart.boot``.
    With ``configure_sdk`` the global OpenTelemetry SDK is configured from the standard
    ``OTEL_*`` environment variables right after the ready moment, as the launcher would.
    Calling it under ``opentelemetry-instrument`` is harmless.
    """
    arming.arm(cv.ORIGIN_START)
    if configure_sdk:
        lifecycle.request_sdk(None)


def mark_ready() -> bool:
    """The application is ready: the cold start ends now.

    Returns ``True`` the first time, ``False`` afterwards or when nothing is being recorded.
    The trace is built and exported on a background thread; this returns at once.
    """
    return lifecycle.mark_ready(cv.TRIGGER_EXPLICIT)
