"""Instrumentors loaded when the application first imports their library, not at launch.

The stock launcher imports every installed instrumentor at start-up, and an instrumentor's module
imports its library: with ``opentelemetry-instrumentation-requests`` installed, every process pays
for ``import requests`` whether it sends a request or not. Here each instrumentor waits for the
first import of its library (a post-import hook) and is loaded and instrumented right after it:
an app that never imports the library pays nothing, and no library is imported earlier than the
app imports it. An instrumentor whose library we cannot name is loaded at once, as the stock
launcher would.

A few instrumentors wait longer, for the first call of the one method their whole effect goes
through (``ON_FIRST_CALL``): loading ``opentelemetry-instrumentation-requests`` (the trace and
metrics API, wrapt with asyncio, packaging: ~70 ms of CPU) on ``import requests`` was most of what
a traced script that imports requests paid, and most programs import requests long before they
send anything, if they send at all before they exit. The method is instrumented before that first
call runs, so every request is traced and carries the context as before.

The entry-point scan reads ``*.dist-info/entry_points.txt`` on ``sys.path`` directly: importing
``importlib.metadata`` would cost the start-up path more than the scan.
"""

from __future__ import annotations

import os
import sys

from otel_coldstart import conventions as cv
from otel_coldstart.launch import launch_phases
from otel_coldstart.record import timeline

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    from collections.abc import Callable
    from typing import Any

INSTRUMENTOR_GROUP = "opentelemetry_instrumentor"
PRE_GROUP = "opentelemetry_pre_instrument"
POST_GROUP = "opentelemetry_post_instrument"
_GROUPS = (PRE_GROUP, INSTRUMENTOR_GROUP, POST_GROUP)

#: Contrib entry-point names whose library module is not the name itself.
TRIGGERS = {
    "aio-pika": "aio_pika",
    "aiohttp-client": "aiohttp",
    "aiohttp-server": "aiohttp",
    "boto3sqs": "boto3",
    "google-genai": "google.genai",
    "grpc_aio_client": "grpc",
    "grpc_aio_server": "grpc",
    "grpc_client": "grpc",
    "grpc_server": "grpc",
    "mysql": "mysql.connector",
    "mysqlclient": "MySQLdb",
    "openai-v2": "openai",
    "tortoiseorm": "tortoise",
    "urllib": "urllib.request",
}
#: Instrumentors that wait for no library (they watch the process or the Lambda handler).
EAGER = frozenset({"system_metrics", "aws-lambda"})
#: Instrumentors whose whole effect is to replace one method in place on a class that every use
#: goes through (module, class, method): loaded on that method's first call, not on the import of
#: the library. Only instrumentors checked to patch exactly that (and the class in place, so that
#: objects made before are covered) belong here.
ON_FIRST_CALL = {"requests": ("requests.sessions", "Session", "send")}
#: Where the services instrumentor's targets live: it waits for the first of them.
SERVICE_MODULES = ("otel_coldstart.library.services", "otel_coldstart.library.lazy", "svcs._core")
#: User-named factories can live in any module: with this set, the services instrumentor loads at once.
SERVICE_FACTORIES_ENV = "OTEL_PYTHON_COLDSTART_SERVICE_FACTORIES"


class Scan:
    """Entry points of our groups and the top-level module names found on ``sys.path``."""

    def __init__(self) -> None:
        self.entry_points: dict[str, list[tuple[str, str]]] = {group: [] for group in _GROUPS}
        self.top_level: set[str] = set(sys.builtin_module_names)


_scan: Scan | None = None


def scan() -> Scan:
    """One pass over ``sys.path`` (cached): the first distribution of a name wins, as in
    ``importlib.metadata``. Each directory's part comes from the scan cache while the directory
    and the ``entry_points.txt`` files it had are unchanged (``_ScanCache``)."""
    global _scan
    if _scan is not None:
        return _scan
    result = Scan()
    seen: set[str] = set()
    cache = _ScanCache.load()
    for entry in sys.path:
        directory = os.path.abspath(entry or ".")
        try:
            found, names = _merged(*cache.directory(directory), seen)
        except (TypeError, ValueError, KeyError):  # a damaged cache entry: read the directory
            found, names = _merged(*cache.directory(directory, fresh=True), seen)
        for group, name, value in found:
            result.entry_points[group].append((name, value))
        result.top_level.update(names)
    cache.save()
    _scan = result
    return result


_EntryPoints = list[tuple[str, str, str]]


def _merged(dists: _Dists, top_level: list[str], seen: set[str]) -> tuple[_EntryPoints, set[str]]:
    """A directory's entry points (of distributions not ``seen`` in an earlier one) and names;
    ``ValueError`` or ``TypeError`` for a part that is not one (a damaged cache)."""
    found: _EntryPoints = []
    new: set[str] = set()
    for dist, _path, _stamp, entry_points in dists:
        if dist in seen or dist in new:
            continue
        new.add(dist)
        found.extend((group, str(name), str(value)) for group, name, value in entry_points)
    if any(group not in _GROUPS for group, _, _ in found):
        raise ValueError("not entry points of our groups")
    names = {str(name) for name in top_level}
    seen.update(new)
    return found, names


#: A directory's part of a scan: (distribution, its entry_points.txt, that file's mtime (ns, -1:
#: none), its entry points of our groups as (group, name, value)) in directory order; top-level names.
_Dists = list[tuple[str, str, int, list[tuple[str, str, str]]]]


#: Metadata that tools rewrite in place (``setup.py develop``, ``egg_info``), not as a new directory.
_REWRITTEN_IN_PLACE = os.path.join(".egg-info", "entry_points.txt")


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _scan_directory(directory: str) -> tuple[int, _Dists, list[str]]:
    # The directory's mtime first: a change while we read makes the next process read again.
    stamp = _mtime_ns(directory)
    dists: _Dists = []
    top_level: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return stamp, dists, top_level
    for entry in entries:
        name = entry.name
        if name.endswith((".dist-info", ".egg-info")):
            path = os.path.join(entry.path, "entry_points.txt")
            file_stamp, found = _read_entry_points(path)
            dists.append((name.partition("-")[0].lower().replace(".", "_"), path, file_stamp, found))
        elif not name.startswith((".", "__")):
            top_level.append(name.partition(".")[0])
    return stamp, dists, top_level


class _ScanCache:
    """The scan's per-directory parts, kept between processes: reading every distribution's
    ``entry_points.txt`` (83 in our development environment) cost each traced process ~2 ms of CPU,
    a stat of each file ~0.2 ms.

    One ``marshal`` file per Python version in ``$XDG_CACHE_HOME/otel-coldstart`` (else
    ``~/.cache``), keyed by absolute directory. A directory's part is used only while the
    directory's mtime is what it was when it was read (installers create, remove and replace
    whole ``.dist-info`` directories: a distribution installed, removed or reinstalled changes
    it), and so is the mtime of each ``.egg-info``'s ``entry_points.txt`` (or its absence:
    ``setup.py develop`` rewrites those in place); else it is read again and the file rewritten
    (atomically; a failure to write costs nothing but the next process's read). Not in an AWS
    Lambda sandbox, whose every cold start has a fresh /tmp.
    """

    MAX_DIRECTORIES = 64

    def __init__(self, path: str | None, parts: dict[str, Any]) -> None:
        self.path = path
        self.parts = parts
        self.changed = False

    @classmethod
    def load(cls) -> _ScanCache:
        if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
            return cls(None, {})
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        path = os.path.join(base, "otel-coldstart", f"entry-points-{version}.marshal")
        parts: Any = None
        try:
            import marshal

            with open(path, "rb") as handle:
                parts = marshal.loads(handle.read())
        except (OSError, ValueError, EOFError, TypeError):
            pass
        return cls(path, parts if isinstance(parts, dict) else {})

    def directory(self, directory: str, fresh: bool = False) -> tuple[_Dists, list[str]]:
        part = None if fresh else self.parts.get(directory)
        try:
            stamp, dists, top_level = part  # type: ignore[misc]
            if stamp == _mtime_ns(directory) and all(
                _mtime_ns(p) == s for _, p, s, _ in dists if p.endswith(_REWRITTEN_IN_PLACE)
            ):
                return dists, top_level
        except (TypeError, ValueError):
            pass  # none, or not ours
        stamp, dists, top_level = _scan_directory(directory)
        self.parts[directory] = (stamp, dists, top_level)
        self.changed = True
        return dists, top_level

    def save(self) -> None:
        if not self.changed or self.path is None:
            return
        try:
            import marshal

            while len(self.parts) > self.MAX_DIRECTORIES:
                del self.parts[next(iter(self.parts))]
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            temporary = f"{self.path}.{os.getpid()}.tmp"
            # Private: what it names is imported and called by every traced process of this user.
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "wb") as handle:
                handle.write(marshal.dumps(self.parts))
            os.replace(temporary, self.path)
        except (OSError, ValueError):
            pass  # a read-only home: every process reads the directories, as without the cache


def _read_entry_points(path: str) -> tuple[int, list[tuple[str, str, str]]]:
    """The mtime (ns) of ``path`` as read (-1: none) and its entry points of our groups."""
    found: list[tuple[str, str, str]] = []
    try:
        with open(path, encoding="utf-8") as handle:
            stamp = os.fstat(handle.fileno()).st_mtime_ns
            text = handle.read()
    except FileNotFoundError:
        return -1, found
    except (OSError, UnicodeDecodeError):
        return _mtime_ns(path), found
    group = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            group = line.strip("[]").strip()
        elif group in _GROUPS and "=" in line:
            name, _, value = line.partition("=")
            found.append((group, name.strip(), value.strip()))
    return stamp, found


def load(value: str) -> Any:
    """The object an entry point names: ``module:attr.attr [extras]``."""
    import importlib

    module_name, _, attributes = value.split("[", 1)[0].strip().partition(":")
    obj: Any = importlib.import_module(module_name.strip())
    for part in attributes.strip().split("."):
        if part:
            obj = getattr(obj, part)
    return obj


def trigger_module(name: str) -> str | None:
    """The module whose first import loads instrumentor ``name``; ``None``: load it now."""
    if name in EAGER:
        return None
    module = TRIGGERS.get(name, name.replace("-", "_"))
    return module if module.partition(".")[0] in scan().top_level else None


def defer(name: str, instrument: Callable[[], Any], instrumentation_module: str | None = None) -> None:
    """Run ``instrument()`` (load and instrument entry point ``name``) when its library is first
    imported (or its method first called, ``ON_FIRST_CALL``; ``instrumentation_module``: the
    module the entry point loads), or now; recorded as ``instrument <name>``, a failure logged,
    never raised."""

    def run(module: object = None) -> None:
        current = timeline.current()
        if current is not None and current.ready_trigger == cv.TRIGGER_EXIT:
            # The app is done: this import is our exit work (the OTLP/HTTP exporter imports
            # requests), and instrumenting now would only spend the exit budget.
            return
        with launch_phases.instrument_step(name):
            try:
                instrument()
            except Exception as exc:  # the application must never pay for our failure
                import logging

                logging.getLogger("otel_coldstart").warning(
                    "otel-coldstart: instrumenting %s failed: %s", name, exc, exc_info=True
                )

    trigger = trigger_module(name)
    if trigger is None:
        run()
        return
    from otel_coldstart.record.post_import import when_imported

    target = ON_FIRST_CALL.get(name)
    if target is not None and instrumentation_module:
        first_call = FirstCall(target, instrumentation_module, run)
        when_imported(trigger, first_call.arm)
        return
    when_imported(trigger, run)


class FirstCall:
    """Stands in for one method (``ON_FIRST_CALL``) until its first call, which puts the method
    back, instruments (the instrumentor wraps the real method) and goes on through the
    instrumented method: that call is traced as every later one.

    Also done at once when anything imports the instrumentation module itself (an app calling
    ``RequestsInstrumentor().instrument()`` or ``.uninstrument()`` sees the state it would have
    seen), and never on a thread doing our own work (the OTLP/HTTP exporter sends with requests)
    or at exit.
    """

    def __init__(self, target: tuple[str, str, str], instrumentation_module: str, run: Callable[[], Any]):
        self.module_name, self.class_name, self.method = target
        self.instrumentation_module = instrumentation_module
        self.run = run
        self.cls: Any = None
        self.original: Any = None
        self.stand_in: Any = None
        self.done = False
        #: The method was put back (not wrapped by someone else meanwhile).
        self.restored = False
        self.owner: int | None = None
        self.lock: Any = None

    def arm(self, _library: object = None) -> None:
        """The library has been imported: stand in for its method (or, if it is not as
        expected, instrument now, as for any other instrumentor)."""
        import _thread

        module = sys.modules.get(self.module_name)
        cls = getattr(module, self.class_name, None)
        original: Any = getattr(cls, "__dict__", {}).get(self.method)
        if not isinstance(cls, type) or type(original).__name__ != "function":
            self.run()
            return
        self.cls, self.original, self.lock = cls, original, _thread.allocate_lock()
        self.stand_in = self._stand_in(original)
        setattr(cls, self.method, self.stand_in)
        from otel_coldstart.record.post_import import when_imported

        when_imported(self.instrumentation_module, lambda _module: self.finish())

    def _stand_in(self, original: Callable[..., Any]) -> Callable[..., Any]:
        import functools  # the library has imported it already

        @functools.wraps(original)
        def stand_in(*args: Any, **kwargs: Any) -> Any:
            if not self.done and not _our_own_work():
                self.finish()
            current = getattr(self.cls, self.method)
            if not self.done or current is stand_in or not self.restored:
                return original(*args, **kwargs)
            return current(*args, **kwargs)

        return stand_in

    def finish(self) -> None:
        """Put the method back and instrument, once; another thread's first call waits for it."""
        import _thread

        if self.done or self.owner == _thread.get_ident():
            return  # done, or the instrumentation's own import of its module, inside this call
        with self.lock:
            if self.done:
                return
            self.owner = _thread.get_ident()
            try:
                if self.cls.__dict__.get(self.method) is self.stand_in:
                    # Wrapped by someone else meanwhile, it stays in their chain: the
                    # instrumentor then wraps theirs.
                    setattr(self.cls, self.method, self.original)
                    self.restored = True
                self.run()
            finally:
                self.done = True
                self.owner = None


def _our_own_work() -> bool:
    """On a thread of our own work, or at exit: nothing the app's instrumentation should see."""
    import _thread

    if _thread.get_ident() in timeline.state.suppressed:
        return True
    current = timeline.current()
    return current is not None and current.ready_trigger == cv.TRIGGER_EXIT


def services_when_imported(install: Callable[[], Any]) -> None:
    """The services instrumentor (wrapt and all) only once one of its targets is imported."""
    if os.environ.get(SERVICE_FACTORIES_ENV, "").strip():
        install()
        return
    from otel_coldstart.record.post_import import when_imported

    for module in SERVICE_MODULES:
        when_imported(module, lambda _module: install())


def _disabled() -> set[str]:
    return {n.strip() for n in os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}


def _call(name: str, value: str) -> None:
    try:
        load(value)()
    except Exception as exc:  # as the stock launcher: one broken hook must not stop the others
        import logging

        logging.getLogger("otel_coldstart").warning("otel-coldstart: %s failed: %s", name, exc)


def install() -> None:
    """The launcher's instrumentor step, for the zero-tax launch: pre-instrument hooks, each
    instrumentor (lazily), post-instrument hooks; ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
    honoured as by ``opentelemetry-instrument``."""
    found = scan().entry_points
    disabled = _disabled()
    for name, value in found[PRE_GROUP]:
        _call(name, value)
    if "*" not in disabled:
        for name, value in found[INSTRUMENTOR_GROUP]:
            if name in disabled or name == "coldstart_imports":  # the import hook is already on
                continue
            if name == "coldstart_services":
                services_when_imported(_install_services)
                continue
            defer(name, _instrument_entry_point(value), _module_of(value))
    for name, value in found[POST_GROUP]:
        if not value.startswith("otel_coldstart."):  # ours marks the launcher's end: done by the caller
            _call(name, value)


def _module_of(value: str) -> str:
    return value.split("[", 1)[0].partition(":")[0].strip()


def _instrument_entry_point(value: str) -> Callable[[], None]:
    # A closure, not functools.partial: functools (collections with it) stays off the start-up path.
    def instrument() -> None:
        load(value)().instrument()

    return instrument


def _install_services() -> None:
    from otel_coldstart.record import service_tracing

    service_tracing.install()
