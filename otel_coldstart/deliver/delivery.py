"""This process's own cold start, from the ready moment on: persist, build, send, release.

1. **Persist** (``persist``): the raw copy of the frozen timeline goes to the spool under a name
   this process claims, synchronously, on the calling thread. It is small (a few MB for 20,000
   imports) and takes milliseconds, and from then on nothing that happens to the process (an exit
   3.12 will not start threads for, SIGKILL, a Lambda freeze) can lose the cold start.
2. **Build** the spans from that same raw copy, so that this process and a later drainer make the
   identical trace. At exit only if the build fits the time left (``fits``): it costs about
   ``BUILD_COST_PER_RECORD_S`` per record, scaled by how starved of CPU the process is: 1-3 s for
   20,000 imports on a busy machine.
3. **Send** (``export.py``): the trace file, then each exporter, acknowledged chunk by chunk.
4. **Release**: whatever is not acknowledged when this process stops trying stays in the spool (the
   raw copy renamed free, or the unacknowledged chunks as OTLP), for the next drain.
"""

from __future__ import annotations

import os
import sys
import time

from otel_coldstart.config import has_exporter, has_sink
from otel_coldstart.deliver import exit_probe, export, lazy_log, raw_copy, spool
from otel_coldstart.record import threads, timeline
from otel_coldstart.record.process_start import PROCESS_SCHEDSTAT, THREAD_SCHEDSTAT, run_and_wait_ns

TYPE_CHECKING = False
if TYPE_CHECKING:  # the exit of every traced process imports this module: no typing, no logging
    from typing import Any

    from otel_coldstart import config

_log = lazy_log.logger

#: Building and encoding the spans of a timeline, per record, at most (measured 19-27 us per record
#: on an idle machine for 20,000 imports, the trace file's light build and the SDK's): scaled by
#: the starvation measured during the persist, so that the estimate follows the machine's load.
#: It used to be 50 times the raw copy's own time, which was a per-record cost too until the copy
#: became columns (``raw_copy._columns``): this keeps the decisions that made on an idle machine.
BUILD_COST_PER_RECORD_S = 95e-6
#: At exit, build only if the estimate takes at most this share of the time left: the rest is for
#: the SDK import and the network.
BUILD_SHARE = 0.5
# With a trace file, the exit may take ``grace_s`` (``lifecycle.BUILD_GRACE_S``) longer than its
# budget to build the spans: the file is a local promise (CI reads it right after the process
# ends), and building is local CPU work. The network never gets more than the budget; without a
# trace file neither does the build.
#: Importing an OTLP exporter costs about this many times as long as importing the SDK (measured
#: 1-1.5x for HTTP, more for gRPC).
EXPORTER_IMPORT_FACTOR = 1.5

#: CPU time of importing the SDK and an OTLP exporter on an idle machine (measured 0.15-0.2 s).
SDK_IMPORT_CPU_S = 0.2
#: CPU time the interpreter's teardown then takes on top, for the modules that sending loaded (the
#: SDK, the exporter, requests or grpc, protobuf): part of the exit delay too. A small app sending
#: at exit used 0.3-0.4 s more CPU in all than one whose raw copy waited in the spool (load 8).
SEND_TEARDOWN_CPU_S = 0.1

_lock = threads.allocate_lock()
_own: export.Job | None = None
_persisted_records = 0
#: How starved of CPU this process is (``_measure_starvation``): 1 on an idle machine, 5-10 beside
#: busy processes on 2 cores.
_starvation = 1.0


def _measure_starvation(wall_s: float, cpu_s: float, thread_started: tuple[int, int] | None) -> float:
    """How much longer than its CPU time this process's work takes now: the largest of wall over
    CPU during the persist, and (where the kernel tells) time runnable over time running, during
    the persist and over the main thread's life. Wall over CPU alone, over the few milliseconds a
    small app's persist takes, often read 1 at load 10 on 2 cores: a process that just got the CPU
    keeps it for a whole time slice."""
    ratios = [wall_s / max(cpu_s, 1e-4)]
    thread_now = run_and_wait_ns(THREAD_SCHEDSTAT)
    if thread_started is not None and thread_now is not None:
        run, wait = thread_now[0] - thread_started[0], thread_now[1] - thread_started[1]
        if run > 0:
            ratios.append((run + wait) / run)
    life = run_and_wait_ns(PROCESS_SCHEDSTAT)
    if life is not None and life[0] > 0:
        ratios.append((life[0] + life[1]) / life[0])
    return max(1.0, *ratios)


def persist(
    frozen: timeline.Timeline, settings: config.Settings, read_uss: bool = False
) -> export.Job | None:
    """Write the raw copy of this process's cold start (once; later calls return the same job).

    ``None`` when there is nothing to deliver to. Never raises for a spool it cannot write: the
    other sinks still get the trace.
    """
    global _own, _persisted_records, _starvation
    with _lock:
        if _own is not None or not has_sink(settings):
            return _own
        # Starvation is measured over the whole persist, not only the records' conversion: for a
        # small app that alone is well under a millisecond, too short to tell a busy machine.
        persist_started, persist_cpu_started = time.perf_counter(), time.process_time()
        sched_started = run_and_wait_ns(THREAD_SCHEDSTAT)
        for callback in list(timeline.state.ready_callbacks):
            try:
                callback(frozen)
            except Exception as exc:  # another part's bug must not cost the cold start
                _log.warning("otel-coldstart: a ready callback failed: %s", exc)
        exit_probe.mark("persist_callbacks")
        from otel_coldstart import conventions as cv
        from otel_coldstart.record import process_role
        from otel_coldstart.record.process_start import process_start_ns

        identity = process_role.current
        extra = identity.root_attributes()
        if frozen.ready_trigger == cv.TRIGGER_SIGNAL:
            extra[cv.INCOMPLETE] = True  # stopped before it was ready
        if read_uss:
            from otel_coldstart.record import memory

            uss = memory.uss()
            if uss is not None:
                extra[cv.MEMORY_USS_AFTER_READY] = uss
        exit_probe.mark("persist_identity")
        started_ns, resource = process_start_ns(), raw_copy.resource_attributes()
        exit_probe.mark("persist_resource")
        raw = raw_copy.snapshot(
            frozen,
            process_start_ns=started_ns,
            resource=resource,
            trace_file=settings.trace_file,
            min_import_ns=int(settings.min_import_duration_ms * 1_000_000),
            extra_root_attributes=extra,
            root_ids=process_role.ids_of(os.getpid()),
            parent_ids=identity.parent_ids,
        )
        exit_probe.mark("persist_snapshot")
        _persisted_records = len(frozen.imports) + len(frozen.records)
        timeline.release(frozen)
        payload = raw_copy.encode(raw)
        exit_probe.mark("persist_encode")
        directory, max_bytes = export.spool_settings(settings)
        stem = spool.new_stem()
        claimed = None
        if directory is not None:
            try:
                claimed = spool.write_file(directory, spool.claim_name(stem, spool.RAW), payload)
            except OSError as exc:
                _log.warning("otel-coldstart: cannot write the spool in %s: %s", directory, exc)
        exit_probe.mark("persist_write")
        _starvation = _measure_starvation(
            time.perf_counter() - persist_started, time.process_time() - persist_cpu_started, sched_started
        )
        job = export.Job(stem, None, directory, max_bytes, claimed_path=claimed, raw=raw)
        if not export.register(job):  # past the exit's cut-off already: release it ourselves
            with job.lock:
                job.closed = True
                job.release()
        _own = job
        return job


def root_context() -> Any:
    """The root span's context of this process's cold start, once built (for links)."""
    job = _own
    return getattr(job, "root_context", None) if job is not None else None


def _grace(settings: config.Settings, grace_s: float) -> float:
    return grace_s if settings.trace_file else 0.0


def fits(deadline: float, settings: config.Settings, grace_s: float = 0.0) -> bool:
    """Whether building the persisted cold start fits the time left before ``deadline``."""
    left = BUILD_SHARE * (deadline - time.monotonic()) + _grace(settings, grace_s)
    return BUILD_COST_PER_RECORD_S * _persisted_records * _starvation <= left


def wait_for_build(deadline: float, settings: config.Settings, grace_s: float = 0.0) -> None:
    """At exit, while the worker builds: wait for the local build (not the network) if there is a
    trace file to write, within the grace."""
    job = _own
    if job is not None and job.building:
        job.built.wait(max(0.0, deadline - time.monotonic()) + _grace(settings, grace_s))


def build(job: export.Job, settings: config.Settings, resource: Any = None) -> bool:
    """Build the spans of ``job``'s raw copy and write the trace file.

    ``False`` if another thread is the builder, or if the job was cut off meanwhile.
    """
    from otel_coldstart.deliver import sdk_setup

    assert job.raw is not None
    with job.lock:
        if job.closed or job.building:
            return False
        job.building = True
    try:
        spans = sdk_setup.build_from_raw(job.raw, resource)
        with job.lock:
            if job.closed:
                return False  # cut off while building: the raw copy is in the spool
            job.chunks = export.chunked(spans)
            if spans:
                job.root_context = spans[-1].get_span_context()
        trace_file = settings.trace_file
        if trace_file:
            job.write_trace_file(trace_file)
        return True
    except BaseException:
        _give_up_building(job)
        raise
    finally:
        job.built.set()


def _give_up_building(job: export.Job) -> None:
    # A builder that failed (3.12+ refuses the SDK's threads once the interpreter is shutting down)
    # hands the job back: the exit's own build (``retry_at_exit``) may still write the trace file.
    with job.lock:
        job.building = False
        job.build_failed = True
        job.chunks = None


def retry_at_exit(settings: config.Settings, deadline: float, grace_s: float = 0.0) -> None:
    """At exit, after the worker: if its build failed, the exit builds and sends what it can."""
    job = _own
    if job is None or not job.build_failed or job.building or job.closed:
        return
    job.build_failed = False
    _log.info("otel-coldstart: the cold start's build after ready failed; the exit builds it")
    _build_and_send(job, settings, deadline, grace_s)


def sends_at_exit(settings: config.Settings) -> bool:
    """The exit policy (``OTEL_PYTHON_COLDSTART_EXIT_EXPORT``): whether a cold start still unsent at
    exit is sent by this process (importing the SDK and an exporter: ~0.2 s of CPU, more than many
    short programs live) or left spooled, raw, for the next process that lives past its ready
    moment or ``otel-coldstart flush``. Nothing to send without a trace exporter; the trace file is
    written either way."""
    return has_exporter() and settings.exit_export != "defer"


def write_trace_file_light(job: export.Job, settings: config.Settings) -> bool:
    """Build ``job``'s raw copy without the SDK (``light_trace.py``) and write the trace file.

    ``False`` if another thread is the builder or the job was cut off."""
    from otel_coldstart.deliver import light_trace, otlp_json

    trace_file = settings.trace_file
    assert job.raw is not None and trace_file  # called only for a trace file
    with job.lock:
        if job.closed or job.building:
            return False
        job.building = True
    try:
        # Text only: the trace file is all these documents are for.
        chunks = export.chunked(light_trace.build_from_raw(job.raw))
        documents = [otlp_json.encode(chunk, mapping=False) for chunk in chunks]
        job.write_trace_file(trace_file, documents)
        return True
    except BaseException:
        _give_up_building(job)
        raise
    finally:
        job.built.set()


def finish_inline(
    frozen: timeline.Timeline, settings: config.Settings, deadline: float, grace_s: float = 0.0
) -> None:
    """At exit (or ``finish_now``): persist, then build and send on this thread if time allows.

    If the worker started after ``mark_ready`` is already building, it is left to it (the caller
    joins it until ``deadline``).
    """
    job = persist(frozen, settings)
    exit_probe.mark("persisted")
    if job is None or job.building:
        return
    _build_and_send(job, settings, deadline, grace_s)


def _build_and_send(job: export.Job, settings: config.Settings, deadline: float, grace_s: float) -> None:
    sending = sends_at_exit(settings)
    if sending and _sdk_too_costly(deadline, settings, grace_s):
        # The trace file needs no SDK: it is still written below; only the send waits.
        _log.info("otel-coldstart: the machine is too busy to send within the exit budget; spooled")
        sending = False
    trace_file = settings.trace_file
    if not sending and not trace_file:
        return  # deferred: the cut-off releases the raw copy for the next process or flush
    if not sending and _light_usable():
        # Nothing to send from here: the trace file is written without importing the SDK.
        if not fits(deadline, settings, grace_s):
            _log.info("otel-coldstart: no time to build the trace file at exit; it waits in the spool")
            return
        if write_trace_file_light(job, settings) and not has_exporter():
            export.deliver([], job, settings)  # the file was the only sink: done, spool entry removed
        return
    if not fits(deadline, settings, grace_s):
        _log.info(
            "otel-coldstart: a cold start of %d imports takes too long to build within the exit "
            "budget; its raw copy waits in the spool for the next process or `otel-coldstart flush`",
            job.raw["imports"] if job.raw is not None else 0,
        )
        return  # the cut-off releases the raw copy
    if _sdk_too_costly(deadline, settings, grace_s):
        _log.info("otel-coldstart: the machine is too busy to build within the exit budget; spooled")
        return
    started = time.monotonic()
    from otel_coldstart.deliver import sdk_setup  # the SDK: nothing of it is loaded before ready

    sdk_import_s = time.monotonic() - started
    exit_probe.mark("sdk_imported")
    if not build(job, settings):
        return
    exit_probe.mark("built")
    if not sending:
        if not has_exporter():
            export.deliver([], job, settings)
        return  # deferred: the raw copy, minus the trace file just written, waits in the spool
    # Importing the exporter (requests or grpc, protobuf) costs about as much again as the SDK did:
    # if that would eat the budget, the next process or flush sends the spooled copy instead.
    if has_exporter() and deadline - time.monotonic() < EXPORTER_IMPORT_FACTOR * sdk_import_s + 0.02:
        _log.info("otel-coldstart: no time left in the exit budget to send; the cold start stays spooled")
        return
    exporters = sdk_setup.trace_exporters(0.9 * (deadline - time.monotonic()))
    exit_probe.mark("exporters_imported")
    try:
        if export.deliver(exporters, job, settings):
            export.drain_at_exit(exporters, settings, deadline)
    finally:
        export.shutdown(exporters)
        exit_probe.mark("sent")


def _sdk_too_costly(deadline: float, settings: config.Settings, grace_s: float) -> bool:
    """Nothing of the SDK is loaded before ready: importing it and an exporter costs ~0.2 s of
    CPU, and tearing them down at exit ~0.1 s more, times how starved this process is. On a busy
    machine that alone would break the budget: the next process or flush sends the spooled copy."""
    if "opentelemetry.sdk.trace" in sys.modules:
        return False
    left = deadline - time.monotonic() + _grace(settings, grace_s)
    return (SDK_IMPORT_CPU_S + SEND_TEARDOWN_CPU_S) * _starvation > left


def _light_usable() -> bool:
    from otel_coldstart.deliver import light_trace

    return light_trace.usable()


def reset_after_fork() -> None:
    global _own, _lock
    _own = None
    _lock = threads.allocate_lock()
