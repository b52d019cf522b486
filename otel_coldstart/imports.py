"""Import recording: a wrapt wrapper around ``importlib._bootstrap._find_and_load``.

Why this function: CPython's C import path (``import x``, ``from x import y``, ``__import__`` and
the submodules a fromlist pulls in) calls ``_find_and_load`` on the ``_frozen_importlib`` module by
attribute lookup, only when the module is not already in ``sys.modules``. That is exactly the call
``python -X importtime`` times, so wrapping it gives the same tree as importtime. The pure-Python
path (``importlib.import_module``) calls the same module global, so it is covered too; importtime
does not see those, and we mark them with ``coldstart.import.api = import_module``.

Meta path finders (pytest's assertion rewriter, zipimport, editable-install finders) run inside
the wrapped call, so they are unaffected.
"""

from __future__ import annotations

import sys
from _thread import get_ident
from collections.abc import Callable
from typing import Any

import wrapt

from otel_coldstart import post_import, timeline
from otel_coldstart.timeline import END, ERROR, MODULE, state

_bootstrap: Any = sys.modules["_frozen_importlib"]
_modules = sys.modules
_now = timeline._now
_gcd_import = _bootstrap._gcd_import
_current = timeline.current_record
#: Modules someone waits for (``post_import.when_imported``): one dict lookup per import.
_post_hooks = post_import.hooks

#: ``OTEL_PYTHON_COLDSTART_IMPORT_MEMORY``: a callable returning RSS, or None (the default).
rss_probe: Callable[[], int] | None = None

#: Set once the SDK is up after the ready moment: ``live(wrapped, name, args, kwargs)`` runs an
#: import under a live span. Until then post-ready imports run unrecorded.
live_handler: Callable[..., Any] | None = None


def _find_and_load(wrapped: Callable[..., Any], instance: object, args: tuple, kwargs: dict) -> Any:
    name = args[0] if args else kwargs["name"]
    if name in _modules:
        # importlib.import_module of a loaded module: not an import, nothing to record.
        return wrapped(*args, **kwargs)
    tid = get_ident()
    tl = state.timeline
    if tid in state.suppressed or tl is None or state.ready:
        handler = live_handler if state.ready and tid not in state.suppressed else None
        module = wrapped(*args, **kwargs) if handler is None else handler(wrapped, name, args, kwargs)
        if name in _post_hooks:
            post_import.fire(name, module)
        return module

    if tid not in tl.thread_names:
        tl.thread_names[tid] = _thread_name()
    import_ = args[1] if len(args) > 1 else kwargs.get("import_")
    record = [name, _now(), 0, _current.get(), tid, import_ is _gcd_import, None, None]
    tl.imports.append(record)
    probe = rss_probe
    rss_before = probe() if probe is not None else 0
    token = _current.set(record)
    try:
        module = wrapped(*args, **kwargs)
    except BaseException as exc:
        record[END] = _now()
        _current.reset(token)
        record[ERROR] = _describe(exc)
        if probe is not None:
            record.append(probe() - rss_before)
        raise
    record[END] = _now()
    _current.reset(token)
    record[MODULE] = module
    if probe is not None:
        record.append(probe() - rss_before)  # a ninth field (RSS delta), only with the option on
    if name in _post_hooks:
        post_import.fire(name, module)
    return module


# CPython strips frames whose file is "<frozen importlib._bootstrap>" from import tracebacks
# (import.c, remove_importlib_frames). Giving our wrapper's code that file name makes a failing
# import's traceback identical to the one without us, instead of ending in this module.
_find_and_load.__code__ = _find_and_load.__code__.replace(co_filename="<frozen importlib._bootstrap>")


def _describe(exc: BaseException) -> tuple[str, str]:
    cls = type(exc)
    qualname = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not change what the application sees
        message = f"<unprintable {cls.__name__}>"
    return qualname, message


def _thread_name() -> str:
    # Only on a thread's first import: threading.current_thread() is too slow for every import.
    import threading

    return threading.current_thread().name


def install(origin: str) -> bool:
    """Start the timeline and wrap the import system. Returns ``False`` if it was already wrapped."""
    timeline.begin(origin)
    if is_installed():
        return False
    post_import.remove_dispatch()  # this wrapper dispatches post-import hooks from now on
    wrapt.wrap_function_wrapper(_bootstrap, "_find_and_load", _find_and_load)
    return True


def uninstall() -> None:
    current = _bootstrap._find_and_load
    if is_installed():
        _bootstrap._find_and_load = current.__wrapped__
        if post_import.hooks:
            post_import.ensure_dispatch()


def is_installed() -> bool:
    current = _bootstrap._find_and_load
    return (
        isinstance(current, wrapt.FunctionWrapper)
        and getattr(current, "_self_wrapper", None) is _find_and_load
    )


post_import.recorder_dispatches = is_installed
