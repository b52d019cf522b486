"""Which cold starts are judged, and how each ended.

A service's processes are not all alike: gunicorn's arbiter, uvicorn's supervisor, a reloader's
parent and multiprocessing's resource tracker are helpers, recorded with their role; only the
processes that do the service's work (the service itself, its workers) are judged against
targets. Helpers are shown apart.

A cold start whose ready moment was not detected ended by the process's exit, a timeout or a stop
signal: its duration includes whatever the process did until then (idle serving, the stop). That
is said wherever the result is shown (``notes`` in the result document).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from otel_coldstart import conventions as cv
from otel_coldstart.validate.analysis import Summary

#: Why a trigger that is not a ready moment matters, said once per kind in the notes.
_ENDINGS = {
    cv.TRIGGER_EXIT: "ended by the process's exit, with no ready moment detected: the duration is "
    "the whole run (fine for a script; for a service it includes idle serving)",
    cv.TRIGGER_TIMEOUT: "ended by OTEL_PYTHON_COLDSTART_READY_TIMEOUT, with no ready moment "
    "detected: the duration is that timeout, not the start-up",
    cv.TRIGGER_SIGNAL: "stopped by a signal before it was ready (incomplete): the start-up had not "
    "finished when the process was told to stop",
}


def role_of(summary: Summary) -> str:
    root = summary.trace.root
    role = root.attributes.get(cv.PROCESS_ROLE) if root is not None else None
    return str(role) if role else cv.ROLE_SERVICE


def is_helper(summary: Summary) -> bool:
    return role_of(summary) in cv.HELPER_ROLES


def split(summaries: Sequence[Summary]) -> tuple[list[Summary], list[Summary]]:
    """(judged, helpers): the service's own processes, and the helpers shown apart."""
    judged = [s for s in summaries if not is_helper(s)]
    helpers = [s for s in summaries if is_helper(s)]
    return judged, helpers


def ending(trigger: str) -> str | None:
    """What a trigger says about the duration, for triggers that are not a ready moment."""
    return _ENDINGS.get(trigger)


def notes(judged: Sequence[Summary], helpers: Sequence[Summary]) -> list[str]:
    """Plain sentences every output shows: which roles were judged, how cold starts ended."""
    out = []
    roles = Counter(role_of(s) for s in judged)
    if helpers:
        helper_roles = Counter(role_of(s) for s in helpers)
        out.append(
            f"Judged {_counted(roles)}; helper processes shown apart, not judged: {_counted(helper_roles)}."
        )
    elif len(roles) > 1:
        out.append(f"Judged {_counted(roles)}.")
    endings = Counter(s.ready_trigger for s in judged if ending(s.ready_trigger))
    for trigger, count in sorted(endings.items()):
        of = f"{count} of {len(judged)} cold starts" if len(judged) > 1 else "This cold start"
        out.append(f"{of} {_ENDINGS[trigger]} (ready trigger '{trigger}').")
    return out


def _counted(roles: Counter[str]) -> str:
    return ", ".join(f"{n} {role}{'s' if n != 1 else ''}" for role, n in sorted(roles.items()))


def helper_documents(helpers: Sequence[Summary]) -> list[dict[str, Any]]:
    out = []
    for summary in helpers:
        root = summary.trace.root
        out.append(
            {
                "trace_id": summary.trace.trace_id,
                "process_role": role_of(summary),
                "pid": None if root is None else root.resource.get("process.pid"),
                "ready_trigger": summary.ready_trigger,
                "cold_start_ms": round(summary.cold_start_ns / 1e6, 3),
            }
        )
    return out
