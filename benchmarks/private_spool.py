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
