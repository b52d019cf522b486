"""AWS Lambda: the cold start ends at the end of init and leaves before the sandbox freezes.

A Lambda runtime asks the Runtime API for work with ``GET /2018-06-01/runtime/invocation/next``.
Its first such request is the end of init: that is the ready moment (trigger ``lambda``). After it
has answered an invocation, its next such request lets Lambda freeze the sandbox at once, and a
frozen sandbox may never run again. So, right before that request, the cold start is delivered
synchronously within ``OTEL_PYTHON_COLDSTART_LAMBDA_FLUSH_TIMEOUT`` (what cannot be sent stays
spooled under ``/tmp``), together with the first invocation's spans and the FaaS metrics.

Two layers are watched, both through post-import hooks and only when ``AWS_LAMBDA_RUNTIME_API``
is set (Lambda sets it; elsewhere this module costs one environment lookup):

- ``awslambdaric``: its native ``runtime_client`` extension talks to the Runtime API in C, so we
  wrap the Python methods around it (``wait_next_invocation``, ``post_invocation_result``,
  ``post_invocation_error``, ``restore_next``).
- any runtime written over ``http.client`` or ``urllib`` (they share ``HTTPConnection.request``):
  requests to ``/runtime/...`` paths are recognised; every other request pays one substring test.

Invocation spans follow the OpenTelemetry FaaS conventions (kind SERVER, named after the function,
``faas.coldstart`` true on the first one only, which also links to the cold-start trace). They are
built when the invocation has ended, from recorded times: nothing is built while a handler runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import wrapt

from otel_coldstart import conventions as cv
from otel_coldstart.deliver import lifecycle
from otel_coldstart.deliver.lambda_sandbox import in_lambda
from otel_coldstart.record import threads, timeline

INIT_TYPE_ENV = "AWS_LAMBDA_INITIALIZATION_TYPE"
#: ``AWS_LAMBDA_INITIALIZATION_TYPE`` values.
ON_DEMAND, PROVISIONED, SNAP_START = "on-demand", "provisioned-concurrency", "snap-start"
#: The ready trigger named on the root span.
TRIGGER = cv.TRIGGER_LAMBDA
#: A first invocation that starts this long after init ended did not keep anyone waiting for init:
#: the environment was initialised ahead of demand (provisioned or proactive initialisation).
PROACTIVE_GAP_S = 1.0


_API_PATH = "/runtime/"
_INVOCATION_END = re.compile(r"/runtime/invocation/[^/]+/(response|error)$")

_log = logging.getLogger("otel_coldstart")
_now = timeline._now


@dataclass
class Invocation:
    number: int
    request_id: str
    invoked_arn: str
    start_ns: int
    start_mono: int
    end_ns: int = 0
    end_mono: int = 0
    error: bool = False


class Runtime:
    """What the runtime has done so far: one per process (a sandbox runs one runtime)."""

    def __init__(self, budget_s: float) -> None:
        self.lock = threading.Lock()
        self.budget_s = budget_s
        self.init_type = os.environ.get(INIT_TYPE_ENV, ON_DEMAND) or ON_DEMAND
        self.nexts = 0
        self.invocations = 0
        self.current: Invocation | None = None
        self.finished: list[Invocation] = []
        #: Monotonic ns: the end of init (the first ``next``), the snapshot request, the restore.
        self.init_end_mono: int | None = None
        self.snapshot_mono: int | None = None
        self.restored_mono: int | None = None
        self.restore_record: Any = None
        self.delivered = False
        #: Seconds spent delivering before each freeze (the last few), for the notes and tests.
        self.flush_seconds: list[float] = []
        #: Seconds the first freeze waited for the cold-start trace to be built (local work).
        self.build_wait_s = 0.0
        self._root_attributes: dict[str, Any] | None = None

    # --- Runtime API events -------------------------------------------------------------------

    def before_next(self) -> None:
        """The runtime is about to ask for the next invocation."""
        with self.lock:
            self.nexts += 1
            first = self.nexts == 1
            # A runtime whose response we did not see: its invocation ends when it asks for more.
            self._end_current(error=False)
        if first:
            self._end_restore()
            self.init_end_mono = _now()
            # With OTEL_PYTHON_COLDSTART_READY=explicit the application says when (in its first
            # invocation, say); the freeze below still ends the cold start if it never does.
            if lifecycle.settings().ready == "auto":
                lifecycle.mark_ready(TRIGGER)
            return
        self._before_freeze()

    def invocation_started(self, request_id: str, invoked_arn: str) -> None:
        with self.lock:
            self._end_current(error=False)
            self.invocations += 1
            self.current = Invocation(self.invocations, request_id, invoked_arn, time.time_ns(), _now())

    def invocation_ended(self, error: bool) -> None:
        with self.lock:
            self._end_current(error)

    def snapshot(self) -> None:
        """SnapStart: the runtime asks to be snapshotted (``GET /runtime/restore/next``)."""
        if self.snapshot_mono is None:
            self.snapshot_mono = _now()

    def restored(self) -> None:
        if self.restored_mono is not None or self.snapshot_mono is None:
            return
        self.restored_mono = _now()
        # After-restore hooks run next: their imports nest under the restore span.
        self.restore_record = timeline.open_record(
            cv.KIND_PHASE, cv.LAMBDA_RESTORE_SPAN, {cv.PHASE: cv.PHASE_RESTORE}
        )

    # --- internals ----------------------------------------------------------------------------

    def _end_current(self, error: bool) -> Invocation | None:
        current = self.current
        if current is None:
            return None
        self.current = None
        current.end_ns = time.time_ns()
        current.end_mono = _now()
        current.error = error
        self.finished.append(current)
        return current

    def _end_restore(self) -> None:
        if self.restore_record is not None:
            with contextlib.suppress(Exception):
                timeline.close_record(self.restore_record)
            self.restore_record = None

    def _before_freeze(self) -> None:
        """Deliver what must leave before the sandbox may freeze.

        Two bounds, as at process exit: the local build of a cold-start trace that is still being
        built (a first invocation of a few ms ends long before it) may take the budget plus
        ``lifecycle.BUILD_GRACE_S``; from then on the network part has the budget.
        """
        started = time.monotonic()
        try:
            with timeline.suppressed():
                first = not self.delivered
                self.delivered = True
                if first:
                    lifecycle.mark_ready(TRIGGER)  # no-op unless the cold start has not ended yet
                    lifecycle._built.wait(self.budget_s + lifecycle.BUILD_GRACE_S)
                    self.build_wait_s = time.monotonic() - started
                deadline = time.monotonic() + self.budget_s
                if first:
                    finish(TRIGGER, deadline)
                with self.lock:
                    done, self.finished = self.finished, []
                _deliver_invocations(self, done, first, deadline)
        except Exception as exc:  # the function must never pay for our failure
            _log.warning("otel-coldstart: Lambda delivery failed: %s", exc, exc_info=True)
        self.flush_seconds = [*self.flush_seconds[-9:], time.monotonic() - started]

    def root_attributes(self, frozen: timeline.Timeline) -> dict[str, Any]:
        """Attributes for the cold-start root, at the ready moment (the end of init); computed once,
        so that the metrics and the trace say the same."""
        if self._root_attributes is not None:
            return self._root_attributes
        ready = frozen.ready_ns if frozen.ready_ns is not None else _now()
        start_mono = frozen.mono_anchor_ns - (frozen.wall_anchor_ns - lifecycle.process_start_ns())
        attrs: dict[str, Any] = {cv.LAMBDA_INIT_TYPE: self.init_type}
        if self.restored_mono is not None and self.snapshot_mono is not None:
            attrs[cv.LAMBDA_INIT_DURATION_NS] = max(0, ready - self.restored_mono)
            attrs[cv.LAMBDA_BEFORE_SNAPSHOT_NS] = max(0, self.snapshot_mono - start_mono)
        else:
            attrs[cv.LAMBDA_INIT_DURATION_NS] = max(0, ready - start_mono)
        self._root_attributes = attrs
        return attrs


_runtime: Runtime | None = None


def install(budget_s: float = 1.0) -> bool:
    """Watch the Runtime API if this process runs in a Lambda sandbox. Idempotent."""
    global _runtime
    if _runtime is not None or not in_lambda():
        return False
    from otel_coldstart.record import post_import

    _runtime = Runtime(budget_s)
    timeline.on_ready(_on_ready)
    post_import.when_imported("awslambdaric.lambda_runtime_client", _hook_awslambdaric)
    post_import.when_imported("http.client", _hook_http_client)
    return True


# --- the ready moment and delivery ------------------------------------------------------------


def _on_ready(frozen: timeline.Timeline) -> None:
    """Ready callback (on the thread that builds the trace): Lambda phases and root attributes."""
    rt = _runtime
    if rt is None:
        return
    attributes = getattr(frozen, "root_attributes", None)
    if attributes is not None:
        attributes.update(rt.root_attributes(frozen))
    if rt.snapshot_mono is not None and rt.restored_mono is not None:
        # Sitting in the snapshot is nobody's start-up work: a span of its own, under main.
        snapshot = timeline.Record(
            cv.KIND_PHASE,
            cv.LAMBDA_SNAPSHOT_SPAN,
            rt.snapshot_mono,
            None,
            next(iter(frozen.thread_names)),
            {cv.PHASE: cv.PHASE_SNAPSHOT, cv.LAMBDA_INIT_TYPE: rt.init_type},
        )
        snapshot.end = rt.restored_mono
        frozen.records.append(snapshot)


def finish(trigger: str, deadline: float) -> None:
    """Deliver the (built) cold start by ``deadline``; what is not through stays spooled."""
    finish_now = getattr(lifecycle, "finish_now", None)
    if finish_now is not None:
        finish_now(trigger, max(0.0, deadline - time.monotonic()))
        return
    # Until lifecycle.finish_now is there: the ready worker writes the spool copy and sends; wait
    # for it until the deadline. What is not through by then stays spooled (the write-ahead copy)
    # and the worker retries it after a thaw.
    worker = lifecycle._worker
    if worker is not None:
        worker.join(max(0.0, deadline - time.monotonic()))


def _deliver_invocations(rt: Runtime, done: list[Invocation], first: bool, deadline: float) -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    root = lifecycle.root_context() if hasattr(lifecycle, "root_context") else None
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or "lambda"
    tracer = trace.get_tracer("otel_coldstart.launch.faas_lambda")
    for invocation in done:
        coldstart = invocation.number == 1
        attrs = _invocation_attributes(invocation)
        attrs[cv.FAAS_COLDSTART] = coldstart
        if coldstart:
            attrs.update(_first_invocation_flags(rt, invocation))
        links = [Link(root)] if coldstart and root is not None else None
        span = tracer.start_span(
            name,
            context=Context(),
            kind=SpanKind.SERVER,
            attributes=attrs,
            links=links,
            start_time=invocation.start_ns,
        )
        if invocation.error:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=invocation.end_ns)
        if coldstart:
            _send_first_invocation(rt, invocation, root, deadline)
    if first:
        _record_metrics(rt, metrics.get_meter_provider())
        _flush(metrics.get_meter_provider(), deadline)
    _flush(trace.get_tracer_provider(), deadline)


def _invocation_attributes(invocation: Invocation) -> dict[str, Any]:
    attrs: dict[str, Any] = {cv.FAAS_TRIGGER: "other", cv.FAAS_INVOCATION_ID: invocation.request_id}
    arn = invocation.invoked_arn
    if arn:
        attrs[cv.AWS_LAMBDA_INVOKED_ARN] = arn
        parts = arn.split(":")
        if len(parts) >= 7:
            attrs[cv.CLOUD_ACCOUNT_ID] = parts[4]
            attrs[cv.CLOUD_RESOURCE_ID] = ":".join(parts[:7])  # without the alias or version
    return attrs


def _first_invocation_flags(rt: Runtime, invocation: Invocation) -> dict[str, Any]:
    if rt.init_end_mono is None:
        return {}
    gap = max(0, invocation.start_mono - rt.init_end_mono)
    proactive = rt.init_type == PROVISIONED or gap > PROACTIVE_GAP_S * 1e9
    return {cv.LAMBDA_INIT_GAP_NS: gap, cv.LAMBDA_PROACTIVE_INIT: proactive}


def _send_first_invocation(rt: Runtime, invocation: Invocation, root: Any, deadline: float) -> None:
    """The first invocation, as a span of the cold-start trace: init vs first invocation."""
    pipeline = lifecycle._pipeline
    if root is None or pipeline is None:
        return
    from opentelemetry import trace

    from otel_coldstart.deliver import export, otlp_json

    attrs = {
        cv.KIND: cv.KIND_INVOCATION,
        cv.PHASE: cv.PHASE_FIRST_INVOCATION,
        cv.FAAS_INVOCATION_ID: invocation.request_id,
        cv.FAAS_COLDSTART: True,
        **_first_invocation_flags(rt, invocation),
    }
    if invocation.error:
        attrs[cv.LAMBDA_ERROR] = True
    parent = trace.set_span_in_context(trace.NonRecordingSpan(root))
    span = pipeline.tracer().start_span(
        cv.LAMBDA_FIRST_INVOCATION_SPAN, context=parent, attributes=attrs, start_time=invocation.start_ns
    )
    span.end(end_time=invocation.end_ns)
    spans = pipeline.take_spans()
    settings = lifecycle.settings()
    if settings.trace_file:
        otlp_json.append_lines(settings.trace_file, [otlp_json.encode(spans)])
    remaining = deadline - time.monotonic()
    if not pipeline.exporters or remaining <= 0:
        return
    exporters = export.bounded(pipeline.exporters, 0.9 * remaining)

    def send() -> None:
        try:
            export.deliver(exporters, spans, settings)
        except Exception as exc:  # the function must never pay for our failure
            _log.warning("otel-coldstart: sending the first invocation failed: %s", exc)

    threads.Thread(send).join(max(0.0, deadline - time.monotonic()))


def _record_metrics(rt: Runtime, provider: Any) -> None:
    """``faas.init_duration`` and ``faas.coldstarts``, where a meter provider is configured."""
    if not hasattr(provider, "force_flush") or rt.init_end_mono is None:
        return
    frozen = timeline.current()
    if frozen is None:
        return
    init_ns = rt.root_attributes(frozen)[cv.LAMBDA_INIT_DURATION_NS]
    meter = provider.get_meter("otel_coldstart.launch.faas_lambda")
    attrs = {cv.LAMBDA_INIT_TYPE: rt.init_type}
    meter.create_histogram(
        cv.METRIC_FAAS_INIT_DURATION, unit="s", description="Duration of the function's initialization"
    ).record(init_ns / 1e9, attrs)
    coldstarts = meter.create_counter(
        cv.METRIC_FAAS_COLDSTARTS, unit="{coldstart}", description="Number of cold starts"
    )
    coldstarts.add(1, attrs)


def _flush(provider: Any, deadline: float) -> None:
    """``provider.force_flush`` until ``deadline`` at most, whatever the collector does.

    The SDK's batch processor (1.28+) exports on the calling thread and does not heed the
    timeout: a hanging collector held the sandbox for the exporter's own timeout (10 s by
    default) at every freeze after the first. On a thread of its own the flush may go on, and
    finishes after the thaw."""
    flush = getattr(provider, "force_flush", None)
    remaining = deadline - time.monotonic()
    if flush is None or remaining <= 0:
        return

    def run() -> None:
        with contextlib.suppress(Exception):
            flush(timeout_millis=int(remaining * 1000))

    threads.Thread(run).join(max(0.0, deadline - time.monotonic()))


# --- awslambdaric -----------------------------------------------------------------------------


def _hook_awslambdaric(module: Any) -> None:
    cls = "BaseLambdaRuntimeClient" if hasattr(module, "BaseLambdaRuntimeClient") else "LambdaRuntimeClient"
    owner = getattr(module, cls, None)
    if owner is None:
        return
    if hasattr(owner, "wait_next_invocation"):
        wrapt.wrap_function_wrapper(module, f"{cls}.wait_next_invocation", _ric_next)
    if hasattr(owner, "post_invocation_result"):
        wrapt.wrap_function_wrapper(module, f"{cls}.post_invocation_result", _ric_result)
    if hasattr(owner, "post_invocation_error"):
        wrapt.wrap_function_wrapper(module, f"{cls}.post_invocation_error", _ric_error)
    if hasattr(owner, "restore_next"):
        wrapt.wrap_function_wrapper(module, f"{cls}.restore_next", _ric_restore)


def _safely(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except Exception as exc:  # never let our bookkeeping change the runtime's behaviour
        _log.warning("otel-coldstart: Lambda runtime hook failed: %s", exc, exc_info=True)


def _ric_next(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    rt = _runtime
    if rt is None:
        return wrapped(*args, **kwargs)
    _safely(rt.before_next)
    request = wrapped(*args, **kwargs)
    _safely(
        rt.invocation_started,
        str(getattr(request, "invoke_id", "") or ""),
        str(getattr(request, "invoked_function_arn", "") or ""),
    )
    return request


def _ric_result(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    try:
        return wrapped(*args, **kwargs)
    finally:
        if _runtime is not None:
            _safely(_runtime.invocation_ended, False)


def _ric_error(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    try:
        return wrapped(*args, **kwargs)
    finally:
        if _runtime is not None:
            _safely(_runtime.invocation_ended, True)


def _ric_restore(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    rt = _runtime
    if rt is not None:
        _safely(rt.snapshot)
    result = wrapped(*args, **kwargs)
    if rt is not None:
        _safely(rt.restored)
    return result


# --- any runtime over http.client / urllib ----------------------------------------------------

#: id(connection) -> what its pending request was ("next" or "restore"), until its response.
_pending: dict[int, str] = {}


def _hook_http_client(module: Any) -> None:
    wrapt.wrap_function_wrapper(module, "HTTPConnection.request", _http_request)
    wrapt.wrap_function_wrapper(module, "HTTPConnection.getresponse", _http_getresponse)


def _classify(method: Any, url: Any) -> str | None:
    if not isinstance(url, str) or _API_PATH not in url:
        return None
    path = url.split("?", 1)[0]
    if method == "GET" and path.endswith("/runtime/invocation/next"):
        return "next"
    if method == "GET" and path.endswith("/runtime/restore/next"):
        return "restore"
    if method == "POST":
        match = _INVOCATION_END.search(path)
        if match:
            return match.group(1)
    return None


def _http_request(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    rt = _runtime
    if rt is None:
        return wrapped(*args, **kwargs)
    method = args[0] if args else kwargs.get("method")
    kind = _classify(method, args[1] if len(args) > 1 else kwargs.get("url"))
    if kind is None:
        return wrapped(*args, **kwargs)
    if kind == "next":
        _safely(rt.before_next)
        _pending[id(instance)] = kind
    elif kind == "restore":
        _safely(rt.snapshot)
        _pending[id(instance)] = kind
    else:
        _safely(rt.invocation_ended, kind == "error")
    return wrapped(*args, **kwargs)


def _http_getresponse(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    kind = _pending.pop(id(instance), None) if _pending else None
    response = wrapped(*args, **kwargs)
    rt = _runtime
    if kind is not None and rt is not None and 200 <= getattr(response, "status", 0) < 300:
        if kind == "next":
            headers = response.headers
            _safely(
                rt.invocation_started,
                headers.get("Lambda-Runtime-Aws-Request-Id", ""),
                headers.get("Lambda-Runtime-Invoked-Function-Arn", ""),
            )
        else:
            _safely(rt.restored)
    return response
