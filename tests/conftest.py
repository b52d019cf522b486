"""Session-wide guard: nothing the suite starts may reach the user's real spool or cache.

Most tests give each traced process a spool of its own (``tests/helpers.py``), but a test that
builds its environment by hand, or strips every ``OTEL_*`` variable, would fall back to
``~/.cache/otel-coldstart/spool``, and whatever it left there would be sent to the user's
collector by their next traced app. The default spool lives under ``$XDG_CACHE_HOME``: point that
at a temporary directory for the whole session, before any test runs, so children inherit it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_cache = tempfile.mkdtemp(prefix="otel-coldstart-test-cache-")
os.environ["XDG_CACHE_HOME"] = _cache


def pytest_unconfigure(config: object) -> None:
    shutil.rmtree(_cache, ignore_errors=True)
