"""Which process this is (the service, a worker, a helper) and the ids that tie processes together.

One cold start per process: a forked or spawned worker records its own, from its creation to its
own ready moment, linked to its parent's trace. To link without any channel between the processes,
a process's cold-start trace id and root span id are derived from what identifies the process on
this machine (boot id, pid, start time in clock ticks): a child computes its parent's ids from
``/proc/<ppid>/stat`` and needs nothing from the parent. Elsewhere the ids are random and children
carry their parent's pid only.

Helper processes (multiprocessing's resource tracker and forkserver, a supervisor that only
starts workers, a reloader) are recorded with their role and never judged as the service.
"""

from __future__ import annotations

import os
import sys

from otel_coldstart import conventions as cv
from otel_coldstart.conventions import ROLE_FORKSERVER, ROLE_RESOURCE_TRACKER, ROLE_SERVICE, ROLE_WORKER

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    from typing import Any

_MULTIPROCESSING_HELPERS = (
    ("multiprocessing.resource_tracker", ROLE_RESOURCE_TRACKER),
    ("multiprocessing.forkserver", ROLE_FORKSERVER),
)


def role_from_command(argv: list[str]) -> str:
    """The role this interpreter was started for, from its command line."""
    if "-c" in argv:
        code = argv[argv.index("-c") + 1] if argv.index("-c") + 1 < len(argv) else ""
        for module, role in _MULTIPROCESSING_HELPERS:
            if module in code:
                return role
        if "multiprocessing.spawn" in code or "--multiprocessing-fork" in argv:
            return ROLE_WORKER
    return ROLE_SERVICE


def command() -> list[str]:
    return list(getattr(sys, "orig_argv", sys.argv))


# --- ids ------------------------------------------------------------------------------------


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def ids_of(pid: int) -> tuple[int, int] | None:
    """The cold-start (trace id, root span id) of process ``pid``, where they can be derived."""
    boot, ticks = _boot_id(), _start_ticks(pid)
    if boot is None or ticks is None:
        return None
    try:  # the builtin module: hashlib would load OpenSSL's (~5 ms) on the start-up path
        from _blake2 import blake2b
    except ImportError:  # pragma: no cover - a build without it
        from hashlib import blake2b
    digest = blake2b(f"{boot}:{pid}:{ticks}".encode(), digest_size=24).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:], "big") or 1
    return trace_id, span_id


# --- the role of this process ------------------------------------------------------------------


class Identity:
    """This process's role and, for a child, its parent's pid and cold-start ids."""

    __slots__ = ("parent_ids", "parent_pid", "role")

    def __init__(self, role: str, parent_pid: int | None = None) -> None:
        self.role = role
        self.parent_pid = parent_pid
        self.parent_ids = ids_of(parent_pid) if parent_pid is not None else None

    def root_attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {cv.PROCESS_ROLE: self.role}
        if self.parent_pid is not None:
            attrs[cv.PARENT_PID] = self.parent_pid
        return attrs


def at_start() -> Identity:
    """The identity of a process we start recording in from its beginning."""
    role = role_from_command(command())
    return Identity(role, os.getppid() if role != ROLE_SERVICE else None)


def forked(parent_pid: int) -> Identity:
    return Identity(ROLE_WORKER, parent_pid)


#: This process's identity; set when recording starts and again in a forked child.
current = Identity(ROLE_SERVICE)


def set_role(role: str) -> None:
    """A detector learned what this process is (a supervisor, a reloader's parent)."""
    current.role = role
