"""When this process was created: the start of every cold start (its ``coldstart.boot`` span).

A module of its own so that the launch side (``lifecycle``) and the delivery side (``sdk_setup``,
the resource's ``process.creation.time``) both import it without importing each other.
"""

from __future__ import annotations

import os
import time


def process_start_ns() -> int:
    """When this process was created, in ns since the epoch.

    psutil's ``create_time()`` adds the process's start (in clock ticks since boot) to the boot
    time, which Linux gives in whole seconds: up to a second off, as large as a cold start. On
    Linux we take the age from the same clock instead (CLOCK_BOOTTIME, 10 ms tick resolution).
    """
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of proc(5), counted after the comm field
        age_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - start_ticks * 1_000_000_000 // os.sysconf(
            "SC_CLK_TCK"
        )
        return time.time_ns() - age_ns
    except (OSError, ValueError, IndexError, AttributeError):
        import psutil

        return int(psutil.Process().create_time() * 1_000_000_000)


#: The kernel's scheduler statistics of the calling thread and of the process (Linux): nanoseconds
#: on a CPU, then nanoseconds runnable but waiting for one.
THREAD_SCHEDSTAT = "/proc/thread-self/schedstat"
PROCESS_SCHEDSTAT = "/proc/self/schedstat"


def run_and_wait_ns(path: str) -> tuple[int, int] | None:
    """``(running, waiting)`` ns from a schedstat file; ``None`` where the kernel keeps no such
    statistics (not Linux, no ``CONFIG_SCHED_INFO``)."""
    try:
        with open(path, "rb") as handle:
            run, wait = handle.read().split()[:2]
        return int(run), int(wait)
    except (OSError, ValueError):
        return None
