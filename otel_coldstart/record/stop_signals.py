"""SIGTERM, SIGINT and SIGHUP: a process stopped before its ready moment keeps its cold start.

How Docker, Kubernetes and systemd stop a service is SIGTERM, whose default action kills the
process with no Python code running: no atexit, no exit path, the cold start lost. So while the
application's view of a stop signal is the default, the handler really installed is ours: it ends
the cold start (trigger ``signal``, incomplete if before ready), writes the durable copy within the
exit budget, puts the default action back and sends the signal again, so the process dies by it
exactly as it would have.

The application never sees our handler: ``signal.getsignal`` and ``signal.signal`` answer with what
the application installed (or the default it never changed). A handler the application installs
(uvicorn's, gunicorn's, Celery's) is what runs; it is only preceded by the freeze of a cold start
still in progress, so a graceful shutdown before ready is reported as stopped by a signal. When the
application puts the default back (uvicorn does, then re-raises the signal), ours is back too.

SIGINT under Python's own handler is left alone (our frame would show in the ``KeyboardInterrupt``
traceback); the exit path sees an unhandled ``KeyboardInterrupt`` and names the trigger ``signal``.
An unhandled ``KeyboardInterrupt`` makes CPython end the process by SIGINT (status 130 in a shell),
but only if nothing evaluates source text between the main module's end and the interpreter's exit
(``exec("...")`` resets that flag, and building spans at exit does such things); ``restore_sigint_exit``
sets it again the same way CPython does.

The handlers are installed through the interpreter's ``_signal`` module: the ``signal`` module
imports ``enum`` (~3 ms of CPU, a tenth of what the launch costs ``python -c pass``), and a program
that never imports it must not pay for it. Its ``signal``/``getsignal`` are replaced when it is
imported (a post-import hook), before the importer sees them; values handed to the application are
``signal.Handlers`` members, as the module's own functions return them.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub: the C half of the signal module
import os
import sys

from otel_coldstart import conventions as cv
from otel_coldstart.record import threads

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    from collections.abc import Callable
    from typing import Any

STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(_signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(_signal, name)
)

_real_signal = _signal.signal
_real_getsignal = _signal.getsignal
_SIG_DFL: int = _signal.SIG_DFL
_SIG_IGN: int = _signal.SIG_IGN
#: Signal -> what the application believes is installed, for the signals whose handler is ours.
_app_view: dict[int, Any] = {}
_installed = False
#: Set by lifecycle: end the cold start now (``trigger``) and write its durable copy, bounded.
_finish: Callable[[str], None] | None = None
#: Set by lifecycle: freeze the cold start with ``trigger`` if it is still in progress (no I/O).
_freeze: Callable[[str], None] | None = None


def install(freeze: Callable[[str], None], finish: Callable[[str], None]) -> None:
    """Take over the stop signals whose disposition is the default (main thread only)."""
    global _installed, _finish, _freeze
    if _installed or not threads.on_main_thread():
        return
    _installed = True
    _freeze, _finish = freeze, finish
    for signum in STOP_SIGNALS:
        current = _real_getsignal(signum)
        if current is None or _is(current, _SIG_IGN) or current is _signal.default_int_handler:
            continue  # set outside Python, ignored, or Python's KeyboardInterrupt (see interrupted())
        _app_view[signum] = current
        _real_signal(signum, _handler)
    from otel_coldstart.record.post_import import when_imported

    when_imported("signal", _replace_functions)


def _replace_functions(module: Any) -> None:
    module.signal = _app_signal
    module.getsignal = _getsignal


def _is(handler: Any, disposition: int) -> bool:
    """``handler`` is SIG_DFL or SIG_IGN (an int, or the ``signal.Handlers`` member that is one)."""
    return isinstance(handler, int) and handler == disposition


def _for_app(handler: Any) -> Any:
    """What ``signal.signal``/``getsignal`` would return: a ``signal.Handlers`` member for the
    dispositions that are numbers."""
    handlers = getattr(sys.modules.get("signal"), "Handlers", None)
    if handlers is not None and isinstance(handler, int):
        try:
            return handlers(handler)
        except ValueError:
            pass
    return handler


def _handler(signum: int, frame: Any) -> Any:
    view = _app_view.get(signum, _SIG_DFL)
    if _freeze is not None:
        try:
            _freeze(cv.TRIGGER_SIGNAL)
        except Exception:
            pass
    if _is(view, _SIG_DFL):
        if _finish is not None:
            try:
                _finish(cv.TRIGGER_SIGNAL)
            except Exception:
                pass
        _die_by(signum)
        return None
    if _is(view, _SIG_IGN) or view is None:
        return None
    return view(signum, frame)


def _die_by(signum: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    _real_signal(signum, _SIG_DFL)
    os.kill(os.getpid(), signum)
    # Only reached if the signal is blocked in this thread: it kills us once unblocked; until
    # then keep our handler in place for the next one.
    _real_signal(signum, _handler)


def _app_signal(signalnum: Any, handler: Any) -> Any:
    """``signal.signal`` as the application knows it."""
    return _for_app(_set(signalnum, handler))


def _set(signalnum: Any, handler: Any) -> Any:
    # As signal.signal: enum members go to _signal as the numbers they are.
    if isinstance(signalnum, int):
        signalnum = int(signalnum)
    if isinstance(handler, int):
        handler = int(handler)
    try:
        signum = int(signalnum)
    except (TypeError, ValueError):
        return _real_signal(signalnum, handler)
    if signum not in _app_view and signum not in STOP_SIGNALS:
        return _real_signal(signalnum, handler)
    if (
        _is(handler, _SIG_IGN)
        or handler is _signal.default_int_handler
        or not (_is(handler, _SIG_DFL) or callable(handler))
    ):
        # Ignoring a stop signal leaves nothing for us to do, KeyboardInterrupt is seen at exit
        # (see interrupted()); a bad handler fails as it would.
        previous = _real_signal(signalnum, handler)
        return _app_view.pop(signum, previous)
    previous = _real_signal(signalnum, _handler)  # raises as the real one would (thread, number)
    result = _app_view.get(signum, previous)
    _app_view[signum] = handler
    return result


def _getsignal(signalnum: Any) -> Any:
    current = _real_getsignal(signalnum)
    if current is _handler:
        return _for_app(_app_view.get(int(signalnum), _SIG_DFL))
    return _for_app(current)


def interrupted() -> bool:
    """The main module ended with an unhandled ``KeyboardInterrupt`` (Ctrl-C, SIGINT).

    SIGINT is left to Python's own handler: raising ``KeyboardInterrupt`` from ours would add our
    frame to the application's traceback. The exit path asks this instead.
    """
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    return isinstance(last, KeyboardInterrupt)


def restore_sigint_exit() -> None:
    """The main module ended with an unhandled ``KeyboardInterrupt``: make sure the interpreter
    still ends the process by SIGINT once it is done, as it would without our exit work.

    CPython records "unhandled KeyboardInterrupt" when evaluating source raises it, and clears it
    at the start of every such evaluation; evaluating ``raise KeyboardInterrupt`` sets it again.
    """
    if not interrupted():
        return
    try:
        exec("raise KeyboardInterrupt", {})
    except KeyboardInterrupt:
        pass
