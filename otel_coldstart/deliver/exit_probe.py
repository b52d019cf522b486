"""Timestamps of the exit path's steps, for ``benchmarks/exit_profile.py``; off unless asked for.

``OTEL_PYTHON_COLDSTART_EXIT_PROFILE=<file>``: each step of the exit (our handlers, the raw copy's
parts, the cut-off) appends ``step wall_ns cpu_ns modules`` to ``<file>`` when the exit handlers
are done; what follows them (the interpreter's teardown) is the rest of the process's lifetime as
its parent sees it. Stdlib ``os`` and ``time`` only: importing this module costs nothing that the
exit it measures would notice.
"""

from __future__ import annotations

import os
import sys
import time

ENV = "OTEL_PYTHON_COLDSTART_EXIT_PROFILE"

_marks: list[tuple[str, int, int, int]] | None = None


def start() -> None:
    """The exit begins: record from here on if ``ENV`` names a file."""
    global _marks
    if _marks is None and os.environ.get(ENV):
        _marks = []
        mark("exit_begins")


def mark(step: str) -> None:
    if _marks is not None:
        _marks.append((step, time.time_ns(), time.process_time_ns(), len(sys.modules)))


def dump() -> None:
    """Append the marks to the file (once); never raises: profiling must not change the exit."""
    global _marks
    path = os.environ.get(ENV)
    marks, _marks = _marks, None
    if not marks or not path:
        return
    mark_line = "".join(f"{step} {wall} {cpu} {modules}\n" for step, wall, cpu, modules in marks)
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"pid {os.getpid()} 0 0\n{mark_line}")
    except OSError:
        pass
