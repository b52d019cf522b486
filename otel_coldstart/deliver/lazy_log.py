"""The ``otel_coldstart`` logger, imported on first use.

``logging`` costs a traced process several milliseconds to import (traceback, linecache,
tokenize, re, string): the exit of a process with nothing to complain about must not pay for it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "otel_coldstart"


#: Levels that an unconfigured ``logging`` drops: while nobody has imported ``logging``, nobody has
#: configured it, the root logger's level is WARNING, and a call at these levels emits nothing.
_DROPPED_UNCONFIGURED = frozenset({"debug", "info"})


def _dropped(*args: Any, **kwargs: Any) -> None:
    return None


class LazyLogger:
    """Stands for ``logging.getLogger("otel_coldstart")``: any attribute (``warning``, ``info``,
    ``isEnabledFor``...) imports logging first, except ``debug`` and ``info`` while ``logging`` is
    not imported at all: those would be dropped, and importing logging for them cost a large app's
    exit ~5 ms of CPU and its teardown more (the cut-off logs at info what it spooled)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        import sys

        if name in _DROPPED_UNCONFIGURED and "logging" not in sys.modules:
            return _dropped
        import logging

        return getattr(logging.getLogger(NAME), name)


logger: Any = LazyLogger()
