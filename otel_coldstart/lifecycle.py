"""The ready moment and everything after it: SDK set-up, span building, export, bounded exit.

Before ready only ``arm()`` runs (hook + exit handlers). After ready the work happens off the
application's main thread, except at process exit, where it must happen before the interpreter
goes away; there the network part is bounded by ``OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from typing import Any, NoReturn

from otel_coldstart import (
    config,
    imports,
    memory,
    post_import,
    process_role,
    ready_detectors,
    stop_signals,
    threads,
    timeline,
)
from otel_coldstart import conventions as cv
from otel_coldstart.process_start import process_start_ns
from otel_coldstart.timeline import Timeline

_lock = threading.Lock()
_armed = False
_settings = config.Settings()
_configure_globals = False
_auto_version: str | None = None
_worker: threads.Thread | None = None
_exporting: threading.Thread | None = None
_pipeline: Any = None
_exit_deadline: float | None = None
_real_exit = os._exit
#: The cold-start root span's context, once built: what later spans link to.
_root_context: Any = None
#: The name of our import instrumentor's entry point (see pyproject.toml).
IMPORTS_ENTRY_POINT = "coldstart_imports"


def _log() -> Any:
    import logging

    return logging.getLogger("otel_coldstart")


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
    if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
        with timeline.suppressed():  # our module, not the application's start-up
            from otel_coldstart import faas_lambda

            faas_lambda.install(_settings.lambda_flush_timeout_s)
    process_role.current = process_role.at_start()
    if _settings.ready == "auto":
        ready_detectors.install(mark_ready)
    stop_signals.install(_freeze_on_signal, _stop_now)
    memory.take_snapshot("hook_installed")
    if _settings.import_memory:
        imports.rss_probe = memory.rss
    atexit.register(_on_exit)
    _wrap_threading_shutdown()
    post_import.when_imported("concurrent.futures.thread", _before_futures_stop)
    os.register_at_fork(after_in_child=_after_fork_in_child)
    os._exit = _exit_wrapper
    if _settings.ready_timeout_s > 0:
        threads.call_later(_settings.ready_timeout_s, mark_ready, "timeout")


def settings() -> config.Settings:
    return _settings


def request_sdk(auto_instrumentation_version: str | None) -> None:
    """The configurator's wish: configure the global SDK providers, but only after ready."""
    global _configure_globals, _auto_version
    _configure_globals = True
    _auto_version = auto_instrumentation_version


def mark_ready(trigger: str = "explicit") -> bool:
    """Declare the application ready: the cold start ends now. Returns ``False`` if it already had.

    The trace is built and exported on a background thread; this call returns at once.
    """
    global _worker
    if _settings.ready == "exit" and trigger not in (cv.TRIGGER_EXIT, cv.TRIGGER_SIGNAL):
        return False
    if trigger == "critical_tier" and _settings.ready != "auto":
        return False
    memory.take_snapshot("ready")
    frozen = timeline.freeze(trigger)
    if frozen is None:
        return False
    ready_detectors.remove_listen_hook()
    _worker = threads.Thread(_finish, frozen)
    return True


def _freeze_on_signal(trigger: str) -> None:
    """A stop signal arrived: a cold start still in progress ends here, incomplete."""
    if not timeline.state.ready:
        mark_ready(trigger)


def _stop_now(trigger: str) -> None:
    """The process is about to die by a signal: end the cold start and write it down first."""
    _freeze_on_signal(trigger)
    _at_main_exit()


def _has_sink() -> bool:
    """A trace file or a traces exporter: without either, a built trace would go nowhere."""
    if _settings.trace_file:
        return True
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    return any(name.strip() not in ("", "none") for name in names.split(","))


#: Set once the worker has built the trace (and written the trace file): local work only.
_built = threading.Event()
#: How much longer than the exit budget an exit may wait for a trace that is still being built.
#: Only an app that exits within moments of ``mark_ready()`` meets it; building is local CPU work
#: (~0.1 s for thousands of imports), and without it that cold start would be lost.
BUILD_GRACE_S = 5.0


def _finish(frozen: Timeline) -> None:
    try:
        spans = _build(frozen)
    finally:
        _built.set()
    if spans:
        _export(spans)


def _export_module() -> Any:
    from otel_coldstart import export

    return export


def _build(frozen: Timeline) -> list[Any]:
    """Local work: SDK set-up, spans, the trace file. Everything here is our own, never recorded."""
    global _pipeline, _root_context
    with timeline.suppressed():
        try:
            from otel_coldstart import otlp_json, sdk_setup, spans

            for callback in list(timeline.state.ready_callbacks):
                callback(frozen)
            _pipeline = sdk_setup.setup(_auto_version, _configure_globals)
            if _configure_globals:
                from opentelemetry import metrics

                memory.MemoryGauges().register(metrics.get_meter_provider())
            uss = memory.uss()
            identity = process_role.current
            root_attributes = identity.root_attributes()
            if uss is not None:
                root_attributes[cv.MEMORY_USS_AFTER_READY] = uss
            if frozen.ready_trigger == cv.TRIGGER_SIGNAL:
                root_attributes[cv.INCOMPLETE] = True  # stopped before it was ready
            root = spans.build(
                frozen,
                _pipeline.tracer(),
                process_start_ns(),
                min_import_ns=int(_settings.min_import_duration_ms * 1_000_000),
                extra_root_attributes=root_attributes,
                parent_ids=identity.parent_ids,
            )
            _root_context = root.get_span_context()
            built = _pipeline.take_spans()
            if _settings.trace_file:
                otlp_json.append_lines(_settings.trace_file, [otlp_json.encode(built)])
            if _settings.live_imports:
                from opentelemetry import trace

                imports.live_handler = spans.make_live_import_handler(
                    trace.get_tracer("otel_coldstart.imports"), timeline.suppressed
                )
            return built
        except Exception as exc:  # the application must never pay for our failure
            _log().warning("otel-coldstart: could not build the cold-start trace: %s", exc, exc_info=True)
            return []


def _export(built: list[Any], deadline: float | None = None) -> None:
    """Deliver the cold-start trace (see ``export.py``): after ready with background retry and
    then the spool of earlier processes; at exit (``deadline``) with exporters bounded by it."""
    global _exporting
    _exporting = threading.current_thread()
    with timeline.suppressed():
        try:
            if deadline is None:
                _export_module().after_ready(_pipeline.exporters, built, _settings)
            else:
                _export_module().at_exit(_pipeline.exporters, built, _settings, deadline)
        except Exception as exc:  # the application must never pay for our failure
            _log().warning("otel-coldstart: cold-start trace export failed: %s", exc, exc_info=True)


def root_context() -> Any:
    """The cold-start root span's ``SpanContext`` once the trace is built, else ``None``."""
    return _root_context


def _at_main_exit() -> None:
    """The main thread is done (or ``os._exit`` was called): if nobody declared ready, now is ready.

    Runs from a wrapper around ``threading._shutdown``, which the interpreter calls before it
    joins threads and before atexit handlers: the last moment at which the interpreter can still
    import modules and start threads (the SDK needs both).
    """
    global _exit_deadline
    if _exit_deadline is not None:
        return
    if _worker is None and not _has_sink():
        return  # no sink, no work: a trace built now would go nowhere
    # A fifth of the budget stays for what follows our handlers: the interpreter's teardown of a
    # process that has the SDK loaded takes 50-100 ms on a busy machine, and the promise is about the
    # process's exit.
    _exit_deadline = time.monotonic() + 0.8 * _settings.exit_timeout_s
    with timeline.suppressed():  # our own module, not part of the app's cold start
        export = _export_module()
    # Background retries and spool drains stop now; only the bounded exit export may still send.
    export.begin_exit(_exit_deadline)
    memory.take_snapshot("ready")
    frozen = timeline.freeze(cv.TRIGGER_SIGNAL if stop_signals.interrupted() else cv.TRIGGER_EXIT)
    if frozen is not None:
        built = _build(frozen)
        if built:
            thread = threading.Thread(
                target=_export, args=(built, _exit_deadline), name="otel-coldstart-export", daemon=True
            )
            thread.start()
            _join(thread, _exit_deadline, "cold-start trace export")
    elif _worker is not None:
        if not _built.is_set():
            _built.wait(max(0.0, _exit_deadline - time.monotonic()) + BUILD_GRACE_S)
        _join(_worker, _exit_deadline, "cold-start trace export")
    # Imports from here on are the interpreter's teardown (weakref's atexit handler imports gc):
    # as live spans they would only give the bounded provider flush something to wait for.
    imports.live_handler = None
    # Whatever is still unacknowledged goes back to the spool before the interpreter goes away.
    with timeline.suppressed():
        for path in export.cut_off():
            _log().warning("otel-coldstart: cold-start trace not acknowledged in time; spooled to %s", path)


def _on_exit() -> None:
    """atexit: flush what was recorded after ready, within the same exit bound."""
    _at_main_exit()
    if _pipeline is not None and _pipeline.shutdowns and _exit_deadline is not None:
        thread = threading.Thread(target=_shutdown_providers, name="otel-coldstart-shutdown", daemon=True)
        thread.start()
        _join(thread, _exit_deadline, "telemetry flush")
    stop_signals.restore_sigint_exit()


def _wrap_threading_shutdown() -> None:
    # A plain function rather than a wrapt wrapper: importing wrapt (asyncio and importlib.metadata
    # with it) would cost the start-up path more than the whole recorder.
    original = threading._shutdown  # type: ignore[attr-defined]

    def _shutdown() -> Any:
        if threading.current_thread() is threading.main_thread():
            # Never let our exit work change how the process ends.
            with contextlib.suppress(Exception):
                _at_main_exit()
        return original()

    _shutdown.__wrapped__ = original  # type: ignore[attr-defined]
    threading._shutdown = _shutdown  # type: ignore[attr-defined]


def _before_futures_stop(module: Any) -> None:
    """gevent's ``threading._shutdown`` on 3.13 runs threading's atexit calls before the function
    we wrap, concurrent.futures' among them (after it no executor takes work, and the SDK's
    resource detection needs one). Registered right after that one, ours runs before it."""
    with contextlib.suppress(Exception):  # RuntimeError: shutdown has begun
        threading._register_atexit(_main_exit_from_threading_atexit)  # type: ignore[attr-defined]


def _main_exit_from_threading_atexit() -> None:
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(Exception):
            _at_main_exit()  # a no-op when our _shutdown wrapper already ran it


def _join(thread: threading.Thread | threads.Thread, deadline: float, what: str) -> None:
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        _log().warning(
            "otel-coldstart: %s did not finish within %.2f s of exit; not waiting longer",
            what,
            _settings.exit_timeout_s,
        )


def _shutdown_providers() -> None:
    with timeline.suppressed():
        for provider in _pipeline.shutdowns:
            with contextlib.suppress(Exception):
                provider.shutdown()


def _exit_wrapper(status: int) -> NoReturn:
    # os._exit skips atexit: without this, an app that ends with it would lose its cold start.
    try:
        _on_exit()
    finally:
        _real_exit(status)


def _after_fork_in_child() -> None:
    """A forked child is a process of its own: its cold start runs from the fork to its own ready
    moment, linked to the parent's. Nothing of the parent's (timeline, threads, exporters) is ours."""
    global _worker, _built, _exit_deadline, _pipeline, _exporting, _configure_globals, _root_context
    if _pipeline is not None:
        _configure_globals = False  # the parent already set up the SDK's global providers
    _worker = _exporting = _pipeline = _exit_deadline = _root_context = None
    _built = threading.Event()
    process_role.current = process_role.forked(os.getppid())
    timeline.reset_after_fork()
    memory.take_snapshot("fork")
    if "otel_coldstart.export" in sys.modules:
        sys.modules["otel_coldstart.export"].reset_after_fork()
