"""The ``opentelemetry_post_instrument`` hook: the launcher has loaded every instrumentor.

A module of its own, importing only the timeline: the launcher loads post-instrument hooks even
when our distro was not chosen, and loading one must not start the recorder.
"""

from __future__ import annotations

from otel_coldstart.record import timeline


def launcher_done() -> None:
    current = timeline.current()
    if current is not None:
        current.mark("launcher_done")
