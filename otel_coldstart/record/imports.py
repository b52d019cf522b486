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
from types import CodeType, FunctionType

from otel_coldstart.record import module_info, post_import, threads, timeline
from otel_coldstart.record.timeline import ImportRecord, state

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    from collections.abc import Callable
    from typing import Any, Protocol

_bootstrap: Any = sys.modules["_frozen_importlib"]
_modules = sys.modules
_now = timeline._now
_gcd_import = _bootstrap._gcd_import
_current = timeline.current_record
_module_dict = module_info.module_dict
#: Modules someone waits for (``post_import.when_imported``): one dict lookup per import.
_post_hooks = post_import.hooks

#: The code every hook ``make_hook`` builds shares: how ours is told from anyone else's wrapper.
_hook_code: CodeType | None = None

#: ``OTEL_PYTHON_COLDSTART_IMPORT_MEMORY``: a callable returning RSS, or None (the default).
rss_probe: Callable[[], int] | None = None


if TYPE_CHECKING:  # a Protocol class would need typing at run time

    class LiveHandler(Protocol):
        """Imports after the ready moment, as live spans: ``start`` before the import runs, ``end``
        after it (with the module, or the exception it raised). Neither may raise."""

        def start(self, name: str, via_import_module: bool) -> Any: ...

        def end(self, handle: Any, module: object, error: BaseException | None) -> None: ...


#: Set once the SDK is up after the ready moment. Until then post-ready imports run unrecorded.
live_handler: LiveHandler | None = None


def make_hook(original: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """The recording replacement for ``original`` (``_find_and_load``).

    A plain function assigned in its place, calling it directly: one Python frame per nested
    import level, which is all a chain of nested imports pays in recursion depth (wrapt's C
    wrapper cost a second one).
    """

    def _find_and_load(name: str, import_: Any) -> Any:
        if name in _modules:
            # importlib.import_module of a loaded module: not an import, nothing to record.
            return original(name, import_)
        tid = get_ident()
        tl = state.timeline
        if tid in state.suppressed or tl is None or state.ready:
            live = live_handler if state.ready and tid not in state.suppressed else None
            if live is None:
                module = original(name, import_)
            else:
                handle = live.start(name, import_ is _gcd_import)
                try:
                    module = original(name, import_)
                except BaseException as exc:
                    live.end(handle, None, exc)
                    raise
                live.end(handle, module, None)
            if name in _post_hooks:
                post_import.fire(name, module)
            return module

        if tid not in tl.thread_names:
            tl.thread_names[tid] = _thread_name()
        record = ImportRecord(name, _now(), _current.get(), tid, import_ is _gcd_import)
        tl.imports.append(record)
        probe = rss_probe
        rss_before = probe() if probe is not None else 0
        token = _current.set(record)
        try:
            module = original(name, import_)
        except BaseException as exc:
            record.end = _now()
            # Not contextlib.suppress: it costs a third of this whole function on every import.
            try:
                _current.reset(token)
            except ValueError:  # set in another context (the import switched greenlets, say)
                pass
            record.error = _describe(exc)
            if probe is not None:
                record.rss_delta = probe() - rss_before
            raise
        record.end = _now()
        try:
            _current.reset(token)
        except ValueError:
            pass
        try:
            namespace = _module_dict(module)
            record.spec = namespace.get("__spec__")
            record.file = namespace.get("__file__")
        except TypeError:
            pass  # replaced in sys.modules by an object that is no module: nothing safe to read
        if probe is not None:
            record.rss_delta = probe() - rss_before
        if name in _post_hooks:
            post_import.fire(name, module)
        return module

    # CPython strips frames whose file is "<frozen importlib._bootstrap>" from import tracebacks
    # (import.c, remove_importlib_frames). Giving our wrapper's code that file name makes a
    # failing import's traceback identical to the one without us, instead of ending in this module.
    global _hook_code
    if _hook_code is None:
        _hook_code = _find_and_load.__code__.replace(co_filename="<frozen importlib._bootstrap>")
    _find_and_load.__code__ = _hook_code
    _find_and_load.__wrapped__ = original  # type: ignore[attr-defined]
    return _find_and_load


def _describe(exc: BaseException) -> tuple[str, str]:
    """``(type, message)`` of an exception for the trace. Whatever the exception's class or
    ``__str__`` does, this returns: the application then gets its own exception, untouched."""
    try:
        cls = type(exc)
        module = cls.__module__
        qualname = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
        if not isinstance(qualname, str):
            qualname = cls.__name__
    except KeyboardInterrupt:
        raise  # a signal arriving here belongs to the application
    except BaseException:
        qualname = "<unnamed exception>"
    try:
        message = str(exc)
        if not isinstance(message, str):
            message = f"<unprintable {qualname}>"
    except KeyboardInterrupt:
        raise
    except BaseException:  # a broken __str__ must not change what the application sees
        message = f"<unprintable {qualname}>"
    return qualname, message


def _thread_name() -> str:
    # Only on a thread's first import: threading.current_thread() is too slow for every import.
    return threads.current_name()


def install(origin: str) -> bool:
    """Start the timeline and wrap the import system. Returns ``False`` if it was already wrapped."""
    timeline.begin(origin)
    if is_installed():
        return False
    post_import.remove_dispatch()  # this wrapper dispatches post-import hooks from now on
    _bootstrap._find_and_load = make_hook(_bootstrap._find_and_load)
    return True


def uninstall() -> None:
    if is_installed():
        _bootstrap._find_and_load = _bootstrap._find_and_load.__wrapped__
        if post_import.hooks:
            post_import.ensure_dispatch()


def is_installed() -> bool:
    current = _bootstrap._find_and_load
    return type(current) is FunctionType and current.__code__ is _hook_code


post_import.recorder_dispatches = is_installed
