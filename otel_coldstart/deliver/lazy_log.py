"""The ``otel_coldstart`` logger, imported on first use.

``logging`` costs a traced process several milliseconds to import (traceback, linecache,
tokenize, re, string): the exit of a process with nothing to complain about must not pay for it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "otel_coldstart"


class LazyLogger:
    """Stands for ``logging.getLogger("otel_coldstart")``: any attribute (``warning``, ``info``,
    ``isEnabledFor``...) imports logging first."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        import logging

        return getattr(logging.getLogger(NAME), name)


logger: Any = LazyLogger()
