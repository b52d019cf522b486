"""Post-import hooks: run a callback right after a module is first imported.

Ready detectors (uvicorn, gunicorn, Django, ...) and the Lambda runtime hook wait for a framework
module this way, so an application that never imports a framework pays nothing for its detector.

Dispatch is one dict lookup per import, done where an import completes: in the import recorder's
wrapper of ``importlib._bootstrap._find_and_load`` (``imports.py``) when it is installed, otherwise
in a small dispatch-only wrapper of the same function installed on the first registration. Unlike
``wrapt.register_post_import_hook`` nothing is added to ``sys.meta_path``, so finders and
``importlib.util.find_spec`` see exactly what they would without us.
"""

from __future__ import annotations

import sys
from types import ModuleType

from otel_coldstart.record import threads

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    from collections.abc import Callable
    from typing import Any

_bootstrap: Any = sys.modules["_frozen_importlib"]
_lock = threads.allocate_lock()

#: Module name -> callbacks still waiting for it. The import wrappers hold this very dict (it is
#: never rebound) and test ``name in hooks`` after each import: the whole cost for other modules.
hooks: dict[str, list[Callable[[ModuleType], Any]]] = {}


def when_imported(module_name: str, callback: Callable[[ModuleType], Any]) -> None:
    """Run ``callback(module)`` once, right after ``module_name`` is first imported.

    If the module is already imported, the callback runs at once, on the calling thread. A
    callback that raises is logged and otherwise ignored: the import it follows is the
    application's, and must succeed exactly as it would without us.
    """
    with _lock:
        module = _loaded(module_name)
        if module is None:
            hooks.setdefault(module_name, []).append(callback)
    if module is not None:
        _run(callback, module_name, module)
        return
    ensure_dispatch()


def fire(name: str, module: Any) -> None:
    """``name`` has just been imported as ``module``: run the callbacks waiting for it."""
    with _lock:
        callbacks = hooks.pop(name, None)
    for callback in callbacks or ():
        _run(callback, name, module)


def _loaded(name: str) -> ModuleType | None:
    module = sys.modules.get(name)
    if module is None:
        return None
    # A module registering a hook for itself (or a circular import) is still executing its body.
    # Its spec read from its __dict__: a proxy in sys.modules may raise from any attribute.
    from otel_coldstart.record.module_info import spec_and_file

    spec = spec_and_file(module)[0]
    if spec is not None and getattr(spec, "_initializing", False) is True:
        return None
    return module


def _run(callback: Callable[[ModuleType], Any], name: str, module: Any) -> None:
    from otel_coldstart.record import timeline

    # Whatever a callback imports is our work, not part of the application's cold start.
    try:
        with timeline.suppressed():
            callback(module)
    except Exception as exc:
        import logging

        logging.getLogger("otel_coldstart").warning(
            "otel-coldstart: post-import hook for %s failed: %s", name, exc, exc_info=True
        )


def _dispatching_find_and_load(name: str, import_: Any) -> Any:
    module = _real_find_and_load(name, import_)
    if name in hooks:
        fire(name, module)
    return module


# Give the wrapper importlib's own file name: CPython strips such frames from import tracebacks,
# so a failing import's traceback stays the one it would be without us (see imports.py).
_dispatching_find_and_load.__code__ = _dispatching_find_and_load.__code__.replace(
    co_filename="<frozen importlib._bootstrap>"
)
_real_find_and_load: Callable[..., Any] = _bootstrap._find_and_load


def _no_recorder() -> bool:
    return False


#: Whether the import recorder's wrapper is installed (and so dispatches); ``imports.py`` sets it.
#: Asked rather than imported: the recorder imports this module.
recorder_dispatches: Callable[[], bool] = _no_recorder


def ensure_dispatch() -> None:
    """Make sure some wrapper dispatches: the import recorder's, or our dispatch-only one."""
    global _real_find_and_load
    with _lock:
        current = _bootstrap._find_and_load
        if current is _dispatching_find_and_load or recorder_dispatches():
            return
        _real_find_and_load = current
        _bootstrap._find_and_load = _dispatching_find_and_load


def remove_dispatch() -> None:
    """Take the dispatch-only wrapper out (the import recorder is about to dispatch instead)."""
    with _lock:
        if _bootstrap._find_and_load is _dispatching_find_and_load:
            _bootstrap._find_and_load = _real_find_and_load
