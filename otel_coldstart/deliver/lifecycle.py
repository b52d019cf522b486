"""The ready moment and everything after it: SDK set-up, span building, export, bounded exit.

Before ready only ``arm()`` runs (hook + exit handlers). After ready the work happens off the
application's main thread, except at process exit (and ``finish_now``), where it must happen
before the interpreter goes away, on the main thread (3.12+ starts no threads at shutdown), within
``OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT``; the raw copy is written first (``delivery.py``).
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time

from otel_coldstart import config
from otel_coldstart import conventions as cv
from otel_coldstart.record import (
    imports,
    memory,
    post_import,
    process_role,
    ready_detectors,
    startup_profile,
    stop_signals,
    threads,
    timeline,
)
from otel_coldstart.record.process_start import process_start_ns  # noqa: F401  (lifecycle.process_start_ns is public)
from otel_coldstart.record.timeline import Timeline

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    import threading
    from collections.abc import Callable
    from typing import Any, NoReturn

# Neither threading nor contextlib here: most traced programs that never import them (python -c,
# small scripts) would pay ~4 ms of CPU for them. threading is wrapped when it is imported.
_lock = threads.allocate_lock()
_armed = False
_settings = config.Settings()
_configure_globals = False
_auto_version: str | Callable[[], str | None] | None = None
_worker: threads.Thread | None = None
_pipeline: Any = None
_exit_deadline: float | None = None
_real_exit = os._exit
#: The cold-start root span's context, once built: what later spans link to.
#: The name of our import instrumentor's entry point (see pyproject.toml).
IMPORTS_ENTRY_POINT = "coldstart_imports"


def _log() -> Any:
    from otel_coldstart.deliver import lazy_log

    return lazy_log.logger


def imports_disabled() -> bool:
    """``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` names our import instrumentor (or ``*``)."""
    disabled = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    names = {name.strip() for name in disabled.split(",")}
    return "*" in names or IMPORTS_ENTRY_POINT in names


def arm(origin: str, record_imports: bool = True) -> None:
    """Start the timeline, the import hook (unless disabled) and the exit handlers.

    Idempotent and cheap: it runs on the start-up path.
    """
    global _armed, _settings
    if record_imports:
        imports.install(origin)
    else:
        timeline.begin(origin)
    with _lock:
        if _armed:
            return
        _armed = True
    _settings, problems = config.load()
    for problem in problems:
        _log().warning("otel-coldstart: %s; using the default", problem)
    process_role.current = process_role.at_start()
    if _settings.ready == "auto":
        ready_detectors.install(mark_ready)
    stop_signals.install(_freeze_on_signal, _stop_now)
    memory.take_snapshot("hook_installed")
    startup_profile.start(_settings.profile_interval_ms)
    if _settings.import_memory:
        imports.rss_probe = memory.rss
    atexit.register(_on_exit)
    post_import.when_imported("threading", _wrap_threading_shutdown)
    post_import.when_imported("concurrent.futures.thread", _before_futures_stop)
    os.register_at_fork(after_in_child=_after_fork_in_child)
    os._exit = _exit_wrapper
    if _settings.ready_timeout_s > 0:
        _import_threading_first()  # the timer's mark_ready starts the worker
        threads.call_later(_settings.ready_timeout_s, mark_ready, cv.TRIGGER_TIMEOUT)


def _import_threading_first() -> None:
    """Import threading on this thread (the main one, normally) if nothing has: before 3.12 it
    takes the thread that first imports it for the main thread, and one of ours (the worker, whose
    SDK set-up imports it) must never be that thread: the app's main thread would be a dummy, and
    the interpreter's shutdown would fail on our thread's lock."""
    if "threading" not in sys.modules:
        with timeline.suppressed():
            import threading  # noqa: F401


def settings() -> config.Settings:
    return _settings


def request_sdk(auto_instrumentation_version: str | Callable[[], str | None] | None) -> None:
    """The configurator's wish: configure the global SDK providers, but only after ready.

    The version may be a function that finds it: looked up after ready, off the start-up path.
    """
    global _configure_globals, _auto_version
    _configure_globals = True
    _auto_version = auto_instrumentation_version


def mark_ready(trigger: str = cv.TRIGGER_EXPLICIT) -> bool:
    """Declare the application ready: the cold start ends now. Returns ``False`` if it already had.

    The trace is built and exported on a background thread; this call returns at once.
    """
    global _worker
    if _settings.ready == "exit" and trigger not in (cv.TRIGGER_EXIT, cv.TRIGGER_SIGNAL):
        return False
    if trigger == cv.TRIGGER_CRITICAL_TIER and _settings.ready != "auto":
        return False
    memory.take_snapshot("ready")
    frozen = timeline.freeze(trigger)
    if frozen is None:
        return False
    ready_detectors.remove_listen_hook()
    _import_threading_first()
    _worker = threads.Thread(_after_ready, frozen)
    return True


def _freeze_on_signal(trigger: str) -> None:
    """A stop signal arrived: a cold start still in progress ends here, incomplete."""
    if not timeline.state.ready:
        mark_ready(trigger)


def _stop_now(trigger: str) -> None:
    """The process is about to die by a signal: end the cold start and write it down first, on
    this thread (no new thread: the process may be past the point of starting one)."""
    finish_now(trigger, 0.8 * _settings.exit_timeout_s)


def _has_sink() -> bool:
    """A trace file or a traces exporter: without either, a built trace would go nowhere.

    Asked at exit before the freeze: importing the delivery modules for it would put our exit's
    imports (4 ms for ``python -c pass``) inside the app's cold start."""
    return config.has_sink(_settings)


#: Set once the worker is through with the local work (raw copy, spans, trace file).
_built = threads.Flag()
#: How much longer than the exit budget an exit (or a Lambda freeze) may wait for the local build
#: of a trace that has a trace file to go to (``delivery.BUILD_GRACE_S``).
BUILD_GRACE_S = 5.0


def finish_now(trigger: str, budget_s: float) -> None:
    """End the cold start now if it has not ended (ready with ``trigger``), write its durable copy
    synchronously, then deliver it within ``budget_s`` on this thread; whatever is not delivered by
    then stays in the spool. For terminating signals and a Lambda sandbox about to freeze: safe in
    a signal handler, never raises, never starts a thread. The process may live on afterwards.
    """
    try:
        if _exit_deadline is not None:
            return  # the exit is already doing it
        with _collections_held():
            _finish(trigger, time.monotonic() + max(0.0, float(budget_s)))
    except Exception as exc:  # the application must never pay for our failure
        try:
            _log().warning("otel-coldstart: finish_now(%r) failed: %s", trigger, exc)
        except Exception:
            pass
    finally:
        if _exit_deadline is None and "otel_coldstart.deliver.export" in sys.modules:
            sys.modules["otel_coldstart.deliver.export"].end_exit()


def _exit_probe() -> Any:
    with timeline.suppressed():  # our own module: at exit the cold start may not have ended yet
        from otel_coldstart.deliver import exit_probe
    return exit_probe


def _delivery() -> Any:
    from otel_coldstart.deliver import delivery

    return delivery


def _export_module() -> Any:
    from otel_coldstart.deliver import export

    return export


def _after_ready(frozen: Timeline) -> None:
    """The worker after ``mark_ready``: raw copy, SDK set-up, build, send (with retry), drain."""
    global _pipeline
    with timeline.suppressed():
        try:
            delivery = _delivery()
            export = _export_module()
            job = delivery.persist(frozen, _settings, read_uss=True)
            if export.exiting():
                return  # the exit came first: it builds and sends on the main thread
            _pipeline = _setup_pipeline()
            if job is None or export.exiting() or not delivery.build(job, _settings):
                return  # at exit the main thread owns what is left (the cut-off releases it)
            _built.set()
            if export.deliver(_pipeline.exporters, job, _settings):
                export.drain_after_ready(_pipeline.exporters, _settings)
        except RuntimeError as exc:
            shutting_down = sys.is_finalizing() or _export_module().exiting()
            if not shutting_down:
                message = "otel-coldstart: could not deliver the cold-start trace: %s"
                _log().warning(message, exc, exc_info=True)
            else:
                # The app ended while we set the SDK up, and 3.12+ refuses the SDK's threads at
                # shutdown: the raw copy is written, and the exit path (or the next drain) sends
                # it. Nothing for the app's stderr.
                _log().info("otel-coldstart: the exit came during the SDK set-up: %s", exc)
        except Exception as exc:  # the application must never pay for our failure
            _log().warning("otel-coldstart: could not deliver the cold-start trace: %s", exc, exc_info=True)
        finally:
            _built.set()
            if _pipeline is not None and not _export_module().exiting():
                _export_module().shutdown(_pipeline.exporters)


def _setup_pipeline() -> Any:
    """The global SDK (if the configurator asked), memory gauges, live imports: for a process that
    lives on after ready. Everything here is our own work, never recorded."""
    from otel_coldstart.deliver import sdk_setup, spans

    version = _auto_version() if callable(_auto_version) else _auto_version
    pipeline = sdk_setup.setup(version, _configure_globals)
    if _configure_globals:
        from opentelemetry import metrics

        memory.MemoryGauges().register(metrics.get_meter_provider())
    if _settings.live_imports:
        from opentelemetry import trace

        imports.live_handler = spans.make_live_import_handler(
            trace.get_tracer("otel_coldstart.record.imports"), timeline.suppressed
        )
    return pipeline


def root_context() -> Any:
    """The cold-start root span's ``SpanContext`` once the trace is built, else ``None``."""
    if "otel_coldstart.deliver.delivery" not in sys.modules:
        return None
    return sys.modules["otel_coldstart.deliver.delivery"].root_context()


def _at_main_exit() -> None:
    """The main thread is done (or ``os._exit`` was called): if nobody declared ready, now is ready.

    Runs from a wrapper around ``threading._shutdown``, which the interpreter calls before it
    joins threads and before atexit handlers.
    """
    global _exit_deadline
    if _exit_deadline is not None:
        return
    exit_probe = _exit_probe()
    exit_probe.start()
    with _collections_held():
        if _worker is None and not _has_sink():
            return  # no sink, no work: a trace built now would go nowhere
        # A fifth of the budget stays for what follows our handlers: the interpreter's teardown of
        # a process that has the SDK loaded takes 50-100 ms on a busy machine, and the promise is
        # about the process's exit.
        _exit_deadline = time.monotonic() + 0.8 * _settings.exit_timeout_s
        startup_profile.exit_deadline = _exit_deadline
        _finish(cv.TRIGGER_SIGNAL if stop_signals.interrupted() else cv.TRIGGER_EXIT, _exit_deadline)


class _collections_held:
    """No automatic garbage collection while our exit work runs.

    Our exit allocates (and frees, by reference counting) some 100,000 objects for a large app;
    each 700 allocations start a young collection, each tenth of those an older one, and in an app
    that has just imported thousands of modules the next one is a full collection of everything
    (0.1-0.2 s of CPU with 20,000 modules, seconds on a busy machine). Held off, the counters stand
    where the app left them, and the process ends with the collections it would have had without us.
    """

    __slots__ = ("was_enabled",)

    def __enter__(self) -> None:
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.was_enabled:
            gc.enable()


def _finish(trigger: str, deadline: float) -> None:
    """Exit or ``finish_now``: freeze, persist, deliver on this thread until ``deadline``, cut off."""
    exit_probe = _exit_probe()
    exit_probe.mark("has_sink")
    memory.take_snapshot("ready")
    # Freeze first: importing our delivery modules (the SDK with them) is our work, and at exit it
    # used to end up inside the app's cold start (65 ms of pip's, 247 ms of Django's).
    frozen = timeline.freeze(trigger)
    exit_probe.mark("snapshot_freeze")
    with timeline.suppressed():  # our own modules, not part of the app's cold start
        export = _export_module()
        delivery = _delivery()
    exit_probe.mark("import_delivery")
    # Background retries and spool drains stop now; only the bounded export here may still send.
    export.begin_exit(deadline)
    with timeline.suppressed():
        try:
            # Ready may have come earlier (``mark_ready``): then the worker may not even have
            # written the raw copy yet, or started building; whatever it has not begun, we do.
            current = frozen if frozen is not None else timeline.current()
            if current is not None and current.ready_ns is not None:
                delivery.finish_inline(current, _settings, deadline, BUILD_GRACE_S)
            if _worker is not None:
                delivery.wait_for_build(deadline, _settings, BUILD_GRACE_S)
                _join(_worker, deadline, "cold-start trace export")
                delivery.retry_at_exit(_settings, deadline, BUILD_GRACE_S)
        except Exception as exc:  # the application must never pay for our failure
            _log().warning("otel-coldstart: cold-start trace delivery failed: %s", exc, exc_info=True)
        finally:
            _built.set()
            # Imports from here on are the interpreter's teardown (weakref's atexit handler imports
            # gc): as live spans they would only give the bounded provider flush something to wait for.
            imports.live_handler = None
            # Whatever is still unacknowledged goes back to the spool before the interpreter goes.
            for path in export.cut_off():
                _log().info("otel-coldstart: cold-start trace not delivered in time; spooled to %s", path)
            exit_probe.mark("cut_off")


def _on_exit() -> None:
    """atexit: flush what was recorded after ready, within the same exit bound."""
    _at_main_exit()
    if _pipeline is not None and _pipeline.shutdowns and _exit_deadline is not None:
        try:
            _join(threads.Thread(_shutdown_providers), _exit_deadline, "telemetry flush")
        except RuntimeError:  # 3.12+: no new threads at shutdown; flush what is queued, bounded
            _flush_providers(_exit_deadline)
    stop_signals.restore_sigint_exit()
    current = timeline.current()
    if current is not None:
        # Persisted (or with no sink, going nowhere): nothing reads the records after this, and
        # held they would cost the interpreter's teardown a late full collection.
        timeline.release(current)
    if "otel_coldstart.deliver.exit_probe" in sys.modules:
        sys.modules["otel_coldstart.deliver.exit_probe"].mark("atexit_done")
        sys.modules["otel_coldstart.deliver.exit_probe"].dump()


def _wrap_threading_shutdown(threading: Any) -> None:
    # A plain function rather than a wrapt wrapper: importing wrapt (asyncio and importlib.metadata
    # with it) would cost the start-up path more than the whole recorder. Done when threading is
    # imported: without it the interpreter calls no threading._shutdown, and atexit runs our exit.
    original = threading._shutdown

    def _shutdown() -> Any:
        if threading.current_thread() is threading.main_thread():
            # Never let our exit work change how the process ends.
            try:
                _at_main_exit()
            except Exception:
                pass
        return original()

    _shutdown.__wrapped__ = original  # type: ignore[attr-defined]
    threading._shutdown = _shutdown


def _before_futures_stop(module: Any) -> None:
    """gevent's ``threading._shutdown`` on 3.13 runs threading's atexit calls before the function
    we wrap, concurrent.futures' among them (after it no executor takes work, and the SDK's
    resource detection needs one). Registered right after that one, ours runs before it."""
    import threading  # concurrent.futures.thread has imported it

    try:
        threading._register_atexit(_main_exit_from_threading_atexit)  # type: ignore[attr-defined]
    except Exception:  # RuntimeError: shutdown has begun
        pass


def _main_exit_from_threading_atexit() -> None:
    if threads.on_main_thread():
        try:
            _at_main_exit()  # a no-op when our _shutdown wrapper already ran it
        except Exception:
            pass


def _join(thread: threading.Thread | threads.Thread, deadline: float, what: str) -> None:
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        _log().warning(
            "otel-coldstart: %s did not finish within %.2f s of exit; not waiting longer",
            what,
            _settings.exit_timeout_s,
        )


def _flush_providers(deadline: float) -> None:
    with timeline.suppressed():
        for provider in _pipeline.shutdowns:
            left_ms = int(1000 * (deadline - time.monotonic()))
            if left_ms <= 0:
                return
            try:
                provider.force_flush(left_ms)
            except Exception:
                pass


def _shutdown_providers() -> None:
    with timeline.suppressed():
        for provider in _pipeline.shutdowns:
            try:
                provider.shutdown()
            except Exception:
                pass


def _exit_wrapper(status: int) -> NoReturn:
    # os._exit skips atexit: without this, an app that ends with it would lose its cold start.
    try:
        _on_exit()
    finally:
        _real_exit(status)


def _after_fork_in_child() -> None:
    """A forked child is a process of its own: its cold start runs from the fork to its own ready
    moment, linked to the parent's. Nothing of the parent's (timeline, threads, exporters) is ours."""
    global _worker, _built, _exit_deadline, _pipeline, _configure_globals
    if _pipeline is not None:
        _configure_globals = False  # the parent already set up the SDK's global providers
    _worker = _pipeline = _exit_deadline = None
    _built = threads.Flag()
    process_role.current = process_role.forked(os.getppid())
    timeline.reset_after_fork()
    memory.take_snapshot("fork")
    if "otel_coldstart.deliver.export" in sys.modules:
        sys.modules["otel_coldstart.deliver.export"].reset_after_fork()
    if "otel_coldstart.deliver.delivery" in sys.modules:
        sys.modules["otel_coldstart.deliver.delivery"].reset_after_fork()
