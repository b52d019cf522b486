"""Our own background threads: real OS threads the application cannot see.

Why not ``threading``: a ``threading.Thread`` (or ``Timer``) of ours shows in
``threading.enumerate()`` and ``active_count()`` and takes a number from the counter that names
the application's own threads ("Thread-3"), so the application would notice us. And after gevent's
or eventlet's monkey-patching, ``threading`` starts greenlets: a timer started from a real thread
would hand its work to a hub nobody runs, and the cold start would be lost at exit.

So these threads are started with the interpreter's own ``_thread`` functions, taken before any
monkey-patching could replace them (this module is imported by the launcher, before the
application runs; if it is imported later, the patcher's saved originals are used).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    from collections.abc import Callable
    from typing import Any


def _original(name: str) -> Any:
    """``_thread.<name>`` as the interpreter made it, even if the process is monkey-patched."""
    gevent = sys.modules.get("gevent.monkey")
    if gevent is not None:
        try:
            return gevent.get_original("_thread", name)
        except Exception:
            pass
    eventlet = sys.modules.get("eventlet.patcher")
    if eventlet is not None:
        try:
            return getattr(eventlet.original("_thread"), name)
        except Exception:
            pass
    import _thread

    return getattr(_thread, name)


_start_new_thread = _original("start_new_thread")
_allocate_lock = _original("allocate_lock")
_TIMEOUT_MAX: float = _original("TIMEOUT_MAX")


class Thread:
    """A started background thread with ``join(timeout)`` and ``is_alive()``: what our exit path
    needs of it. Its target must not raise (ours catch and log): nothing would report it."""

    __slots__ = ("_done",)

    def __init__(self, target: Callable[..., Any], *args: Any) -> None:
        self._done = _allocate_lock()
        self._done.acquire()
        _start_new_thread(self._run, (target, args))

    def _run(self, target: Callable[..., Any], args: tuple) -> None:
        try:
            target(*args)
        finally:
            _forget_dummy_thread()
            self._done.release()

    def join(self, timeout: float | None = None) -> None:
        if self._done.acquire(True, -1 if timeout is None else min(max(0.0, timeout), _TIMEOUT_MAX)):
            self._done.release()

    def is_alive(self) -> bool:
        return self._done.locked()


def _forget_dummy_thread() -> None:
    """Anything that called ``threading.current_thread()`` here (psutil does at import) registered
    a ``_DummyThread`` for this thread, which would stay in ``threading.enumerate()`` for good."""
    threading = sys.modules.get("threading")
    try:
        key = threading.get_ident()  # type: ignore[union-attr]  # the patched one, if patched
        if type(threading._active.get(key)) is threading._DummyThread:  # type: ignore[union-attr]
            threading._active.pop(key, None)  # type: ignore[union-attr]
    except Exception:
        pass


def call_later(delay_s: float, function: Callable[..., Any], *args: Any) -> Thread:
    """Run ``function(*args)`` on a thread of its own after ``delay_s`` seconds."""

    def wait_then_call() -> None:
        # A lock nobody releases, as a sleep no monkey-patching can turn into a greenlet switch.
        never = _allocate_lock()
        never.acquire()
        never.acquire(True, min(delay_s, _TIMEOUT_MAX))
        function(*args)

    return Thread(wait_then_call)
