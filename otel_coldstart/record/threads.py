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

import os
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
_original_get_ident = _original("get_ident")
_allocate_lock = _original("allocate_lock")
#: A real lock (``threading.Lock`` without importing ``threading``, never a greenlet's).
allocate_lock = _allocate_lock
_TIMEOUT_MAX: float = _original("TIMEOUT_MAX")


#: A thread's own faults: they must reach the thread that faulted. Every other signal is
#: process-directed (``kill``), and the kernel picks any thread that does not block it.
_FAULTS = ("SIGILL", "SIGTRAP", "SIGBUS", "SIGFPE", "SIGSEGV", "SIGSYS")
_asynchronous: Any = None


def start_without_signals(start: Callable[..., Any], *args: Any) -> Any:
    """``start(*args)`` (a thread's start) with the asynchronous signals blocked in the thread it
    starts, which inherits the mask from its birth, and so does every thread it starts.

    Without us the application's process has only its own threads. A SIGTERM sent to the process
    goes to any thread that does not block it: on one of ours, the main thread's ``time.sleep``
    or ``select`` is not interrupted, and the application's handler (or ours, which ends the
    process) runs only when the main thread wakes, up to the whole sleep later.
    """
    global _asynchronous
    try:
        import _signal  # type: ignore[import-not-found]  # no stub: the C half of the signal module

        if _asynchronous is None:
            faults = {getattr(_signal, name) for name in _FAULTS if hasattr(_signal, name)}
            _asynchronous = _signal.valid_signals() - faults
        previous = _signal.pthread_sigmask(_signal.SIG_BLOCK, _asynchronous)
    except (ImportError, AttributeError, OSError, ValueError):  # no POSIX signal masks here
        return start(*args)
    try:
        return start(*args)
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, previous)


class Thread:
    """A started background thread with ``join(timeout)`` and ``is_alive()``: what our exit path
    needs of it. Its target must not raise (ours catch and log): nothing would report it."""

    __slots__ = ("_done",)

    def __init__(self, target: Callable[..., Any], *args: Any) -> None:
        self._done = _allocate_lock()
        self._done.acquire()
        start_without_signals(_start_new_thread, self._run, (target, args))

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


class Flag:
    """``threading.Event`` of real locks (our worker sets it, the main thread waits for it; never a
    greenlet's), without importing ``threading``. The gate is held while the flag is clear."""

    __slots__ = ("_gate", "_mutex", "_set")

    def __init__(self) -> None:
        self._mutex = _allocate_lock()
        self._gate = _allocate_lock()
        self._gate.acquire()
        self._set = False

    def set(self) -> None:
        with self._mutex:
            if not self._set:
                self._set = True
                self._gate.release()

    def clear(self) -> None:
        with self._mutex:
            if self._set:
                self._set = False
                self._gate.acquire()  # a waiter holds it only between its acquire and release

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        if self._gate.acquire(True, -1 if timeout is None else min(max(0.0, timeout), _TIMEOUT_MAX)):
            self._gate.release()
            return True
        return self._set


# The thread's identity without importing threading: the recorder starts in every traced process,
# most of which never import it (~4 ms of CPU with contextlib). Like threading itself, which takes
# the thread that first imports it for the main thread, we take the one that first imports us (the
# start-up hook runs on the main thread); after a fork the forking thread is the child's main.
_main_ident: int = _original("get_ident")()


def _main_after_fork() -> None:
    global _main_ident
    _main_ident = _original("get_ident")()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_main_after_fork)


def main_ident() -> int:
    """``threading.main_thread().ident``."""
    threading = sys.modules.get("threading")
    main_thread = getattr(threading, "main_thread", None)
    if main_thread is not None:
        return main_thread().ident or _main_ident
    return _main_ident


def on_main_thread() -> bool:
    """``threading.current_thread() is threading.main_thread()``."""
    threading = sys.modules.get("threading")
    if getattr(threading, "main_thread", None) is not None:
        return threading.current_thread() is threading.main_thread()  # type: ignore[union-attr]
    return _original_get_ident() == _main_ident


def current_name() -> str:
    """``threading.current_thread().name`` once anything has imported ``threading``. Before that,
    "MainThread", or for a thread started with ``_thread`` a name of its ident: importing
    ``threading`` on such a thread would make it threading's main thread."""
    threading = sys.modules.get("threading")
    if getattr(threading, "current_thread", None) is None:
        ident = _original_get_ident()
        return "MainThread" if ident == _main_ident else f"thread-{ident}"
    return threading.current_thread().name  # type: ignore[union-attr]


def call_later(delay_s: float, function: Callable[..., Any], *args: Any) -> Thread:
    """Run ``function(*args)`` on a thread of its own after ``delay_s`` seconds."""

    def wait_then_call() -> None:
        # A lock nobody releases, as a sleep no monkey-patching can turn into a greenlet switch.
        never = _allocate_lock()
        never.acquire()
        never.acquire(True, min(delay_s, _TIMEOUT_MAX))
        function(*args)

    return Thread(wait_then_call)
