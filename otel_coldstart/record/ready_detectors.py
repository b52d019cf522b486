"""Ready detectors: the moment a process can serve, found with no change to the application.

Each detector is a post-import hook (``post_import.when_imported``): an application that never
imports a framework pays nothing for its detector. Each names itself in
``coldstart.ready.trigger``:

- ``listen``: generic; the first socket the process starts listening on (connections are accepted
  by the kernel from then on). Off in a process a framework detector has claimed, and inside a
  framework's own bind step, where the framework knows better.
- ``uvicorn``: ``Server.startup`` done (lifespan start-up complete, sockets serving), in a single
  process, a ``--workers`` worker or gunicorn's uvicorn worker; ``hypercorn``: a worker's lifespan
  start-up complete, its parent (a supervisor) once it has spawned the workers.
- ``gunicorn``: a worker once its application is loaded (sync, gthread, ...; an ASGI worker once
  its lifespan start-up is done); the arbiter, a supervisor, once it has started its workers.
- ``django``, ``werkzeug`` (Flask's dev server), ``socketserver`` (``http.server`` and friends):
  the server loop starts; a reloader's parent is a helper, ready once it has started its child.
- ``celery``: ``worker_ready`` (and ``worker_process_init`` in pool processes).
- ``grpc``: a server's ``start()`` returned.
"""

from __future__ import annotations

import os
from _thread import _local

from otel_coldstart import conventions as cv
from otel_coldstart.record import post_import, process_role

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    from collections.abc import Callable
    from typing import Any

_mark_ready: Callable[[str], Any] = lambda trigger: None  # noqa: E731  (set by install())
#: Frameworks that will declare this process ready themselves: the generic detector stays quiet.
_claims: set[str] = set()
_quiet = _local()  # threading.local, without importing threading


def install(mark_ready: Callable[[str], Any]) -> None:
    global _mark_ready
    _mark_ready = mark_ready
    for module, hook in _HOOKS:
        post_import.when_imported(module, hook)


def _ready(trigger: str) -> None:
    _mark_ready(trigger)


def _claim(name: str) -> None:
    _claims.add(name)


def _wrap(module: Any, path: str, wrapper: Callable[..., Any]) -> None:
    # wrapt is imported here, when a framework was imported: at module level it would put wrapt
    # (asyncio and importlib.metadata with it) on every traced process's start-up path.
    import wrapt

    wrapt.wrap_function_wrapper(module, path, wrapper)


#: What ``functools.update_wrapper`` copies, without importing functools for it.
_WRAPPER_ASSIGNMENTS = ("__module__", "__name__", "__qualname__", "__doc__")


def _wrap_method(cls: type, name: str, wrapper: Callable[..., Any]) -> None:
    """``_wrap`` for a plain function defined on ``cls`` (the standard library's), without wrapt.

    wrapt (asyncio, importlib.metadata and inspect with it: 150 modules, ~50 ms of CPU) must not
    come with ``socketserver``, which ``logging.config`` and ``http.server`` import: a program that
    configures its logging would import all of that because we trace it. The replacement is a
    function like the original (``__wrapped__``, name, qualname, docstring), so that it binds,
    and is found by ``inspect.signature``, as the original is; ``wrapper`` gets wrapt's arguments.
    """
    original = cls.__dict__.get(name)
    if not isinstance(original, type(_wrap_method)):
        return  # not a plain function (someone replaced it): leave it alone

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return wrapper(original.__get__(self, type(self)), self, args, kwargs)

    for attribute in _WRAPPER_ASSIGNMENTS:
        try:
            setattr(method, attribute, getattr(original, attribute))
        except (AttributeError, TypeError):
            pass
    method.__dict__.update(original.__dict__)
    method.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(cls, name, method)


def _after(trigger: str) -> Callable[..., Any]:
    """A wrapper declaring ready once the wrapped call returns."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        result = wrapped(*args, **kwargs)
        _ready(trigger)
        return result

    return wrapper


def _after_async(trigger: str) -> Callable[..., Any]:
    """The same for a coroutine function: ready once the awaited call completes without error."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        async def run() -> Any:
            result = await wrapped(*args, **kwargs)
            _ready(trigger)
            return result

        return run()

    return wrapper


def _quietly(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    depth = getattr(_quiet, "depth", 0)
    _quiet.depth = depth + 1
    try:
        return wrapped(*args, **kwargs)
    finally:
        _quiet.depth = depth


# --- generic: the first listening socket ---------------------------------------------------------


def _socket(module: Any) -> None:
    real_listen = module.socket.listen

    def listen(self: Any, *args: Any) -> None:
        real_listen(self, *args)
        if not _claims and not getattr(_quiet, "depth", 0):
            _ready(cv.TRIGGER_LISTEN)

    # On the Python-level class only (asyncio, socketserver and most servers use it); the C type
    # and sockets made from it are left alone.
    module.socket.listen = listen
    module.socket.listen.__qualname__ = "socket.listen"


def remove_listen_hook() -> None:
    """After ready the generic detector has nothing left to do: give ``socket.listen`` back."""
    import sys

    module = sys.modules.get("socket")
    if module is not None and "listen" in vars(module.socket):
        try:
            del module.socket.listen
        except (AttributeError, TypeError):
            pass


# --- uvicorn, hypercorn ---------------------------------------------------------------------------


def _uvicorn_server(module: Any) -> None:
    _claim("uvicorn")
    _wrap(module, "Server.startup", _uvicorn_startup)


def _uvicorn_startup(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    async def run() -> Any:
        result = await wrapped(*args, **kwargs)
        if not getattr(instance, "should_exit", False):
            _ready("uvicorn")
        return result

    return run()


def _uvicorn_config(module: Any) -> None:
    # Only a supervisor (--workers, --reload) binds the socket itself, then hands it to children.
    _wrap(module, "Config.bind_socket", _quietly)


def _uvicorn_multiprocess(module: Any) -> None:
    _wrap(module, "Multiprocess.init_processes", _supervising(cv.ROLE_SUPERVISOR, "uvicorn"))


def _uvicorn_reload(module: Any) -> None:
    _wrap(module, "BaseReload.startup", _supervising(cv.ROLE_RELOADER, "uvicorn"))


def _supervising(role: str, trigger: str) -> Callable[..., Any]:
    """A helper process: it has that role from the call on, and is ready once its children run."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        pid = os.getpid()
        process_role.set_role(role)
        result = wrapped(*args, **kwargs)
        if os.getpid() == pid:  # a forked child leaving this call is not the supervisor
            _ready(trigger)
        return result

    return wrapper


def _hypercorn_run(module: Any) -> None:
    _claim("hypercorn")
    # With workers, the parent binds the sockets, then spawns the workers that serve them.
    _wrap(module, "_populate", _supervising(cv.ROLE_SUPERVISOR, "hypercorn"))


def _hypercorn_lifespan(module: Any) -> None:
    _claim("hypercorn")
    _wrap(module, "Lifespan.wait_for_startup", _after_async("hypercorn"))


# --- gunicorn -------------------------------------------------------------------------------------


def _gunicorn_arbiter(module: Any) -> None:
    _claim("gunicorn")
    _wrap(module, "Arbiter.run", _arbiter_run)
    _wrap(module, "Arbiter.manage_workers", _arbiter_manage_workers)


def _arbiter_run(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    process_role.set_role(cv.ROLE_SUPERVISOR)
    return wrapped(*args, **kwargs)


def _arbiter_manage_workers(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    pid = os.getpid()
    result = wrapped(*args, **kwargs)
    if os.getpid() == pid and pid == getattr(instance, "pid", pid):
        _ready("gunicorn")
    return result


#: Worker classes whose app only serves after an ASGI lifespan start-up, detected there instead.
_LIFESPAN_WORKERS = ("uvicorn", "uvicorn_worker", "gunicorn.workers.gasgi")


def _gunicorn_worker(module: Any) -> None:
    _claim("gunicorn")
    _wrap(module, "Worker.load_wsgi", _worker_load_wsgi)


def _worker_load_wsgi(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    result = wrapped(*args, **kwargs)
    if not type(instance).__module__.startswith(_LIFESPAN_WORKERS):
        _ready("gunicorn")
    return result


def _gunicorn_lifespan(module: Any) -> None:
    _wrap(module, "LifespanManager.startup", _after_async("gunicorn"))


# --- socketserver, http.server, Django runserver, Werkzeug ---------------------------------------


def _socketserver(module: Any) -> None:
    _wrap_method(module.TCPServer, "server_activate", _quietly)
    _wrap_method(module.BaseServer, "serve_forever", _serve_forever)


def _serve_forever(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    top = type(instance).__module__.partition(".")[0]
    _ready(top if top in ("django", "werkzeug") else "socketserver")
    return wrapped(*args, **kwargs)


def _django_autoreload(module: Any) -> None:
    _wrap(module, "restart_with_reloader", _reloader_parent("django"))


def _werkzeug_reloader(module: Any) -> None:
    _wrap(module, "ReloaderLoop.restart_with_reloader", _reloader_parent("werkzeug"))


def _reloader_parent(trigger: str) -> Callable[..., Any]:
    """The reloader's parent only restarts the real server in a child: a helper, ready now."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        process_role.set_role(cv.ROLE_RELOADER)
        _ready(trigger)
        return wrapped(*args, **kwargs)

    return wrapper


# --- Celery, gRPC --------------------------------------------------------------------------------


def _celery_signals(module: Any) -> None:
    module.worker_ready.connect(_celery_ready, weak=False)
    module.worker_process_init.connect(_celery_ready, weak=False)


def _celery_ready(*args: Any, **kwargs: Any) -> None:
    _ready("celery")


def _grpc_server(module: Any) -> None:
    _wrap(module, "_Server.start", _after("grpc"))


def _grpc_aio_server(module: Any) -> None:
    _wrap(module, "Server.start", _after_async("grpc"))


_HOOKS: tuple[tuple[str, Callable[[Any], None]], ...] = (
    ("socket", _socket),
    ("uvicorn.server", _uvicorn_server),
    ("uvicorn.config", _uvicorn_config),
    ("uvicorn.supervisors.multiprocess", _uvicorn_multiprocess),
    ("uvicorn.supervisors.basereload", _uvicorn_reload),
    ("hypercorn.run", _hypercorn_run),
    ("hypercorn.asyncio.lifespan", _hypercorn_lifespan),
    ("hypercorn.trio.lifespan", _hypercorn_lifespan),
    ("gunicorn.arbiter", _gunicorn_arbiter),
    ("gunicorn.workers.base", _gunicorn_worker),
    ("gunicorn.asgi.lifespan", _gunicorn_lifespan),
    ("socketserver", _socketserver),
    ("django.utils.autoreload", _django_autoreload),
    ("werkzeug._reloader", _werkzeug_reloader),
    ("celery.signals", _celery_signals),
    ("grpc._server", _grpc_server),
    ("grpc.aio._server", _grpc_aio_server),
)
