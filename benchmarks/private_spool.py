"""Benchmarks never touch the user's spool or cache (``~/.cache/otel-coldstart``): every process
a benchmark starts gets a spool and a cache directory of its own, under the benchmark's temporary
directory, whatever ``OTEL_*`` variables the benchmark drops or sets."""

from __future__ import annotations

import os


def isolate(env: dict[str, str], directory: str) -> dict[str, str]:
    """``env`` with a private spool and cache under ``directory``."""
    return {
        **env,
        "OTEL_PYTHON_COLDSTART_SPOOL_DIR": os.path.join(directory, "spool"),
        "XDG_CACHE_HOME": os.path.join(directory, "cache"),
    }


def traced_to(receiver_env: dict[str, str], directory: str, **extra: str) -> dict[str, str]:
    """This environment without any ``OTEL_*`` variable, then our distro sending traces (only) to
    a receiver, with a private spool and cache under ``directory``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return isolate(
        dict(
            base,
            **receiver_env,
            OTEL_PYTHON_DISTRO="otel_coldstart",
            OTEL_PYTHON_CONFIGURATOR="otel_coldstart",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_TIMEOUT="2",
            **extra,
        ),
        directory,
    )
