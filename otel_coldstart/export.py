"""Deliver the cold-start trace exactly once if we can, at least once if we must, and never hold exit.

A cold start happens once per process: a failed export loses it for good, and an exporter that
waits at exit adds to the time we measure. So:

- **Write-ahead.** Before the first chunk leaves, the trace is written to the spool under a name
  that this process claims (see ``spool.py``). A process killed mid-export leaves a claim that the
  next drain recovers; a clean export deletes it.
- **Acknowledged chunks only.** The trace goes out in chunks; each chunk's acknowledgement by
  each exporter is recorded. Whatever is not acknowledged when we stop trying goes back to the
  spool; whatever was acknowledged never does.
- **Bounded exit.** At exit the export runs on a daemon thread with exporters whose own timeout
  fits the remaining exit budget; the main thread joins it until the deadline and then *cuts off*:
  it releases every claim (a rename, or a small local write when part of a trace was acknowledged).
  The one at-least-once corner: a chunk in flight at the cut-off may have reached the collector
  although its answer had not; it is spooled and may arrive twice.
- **Retry, then drain.** A process that keeps running after ready retries in the background
  (``OTEL_PYTHON_COLDSTART_RETRY_SECONDS``) and, once its own trace is through, sends what earlier
  processes spooled. ``otel-coldstart flush`` does the latter on demand.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_coldstart import config, otlp_json, spool

_log = logging.getLogger("otel_coldstart")

#: Spans per export call: well under the 4 MiB default gRPC message limit for import spans.
EXPORT_CHUNK = 512
#: Background retry delays (seconds) after a failed export, the last one repeating.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
#: At exit, send earlier processes' spool only if at least this share of the exit budget is left.
EXIT_DRAIN_SHARE = 0.4

_exiting = threading.Event()
_exit_deadline: float | None = None
_jobs_lock = threading.Lock()
_jobs: list[Job] = []


def _success(result: Any) -> bool:
    from opentelemetry.sdk.trace.export import SpanExportResult

    return result is SpanExportResult.SUCCESS


class Job:
    """One cold start on its way: its chunks, who acknowledged which, and its spool file."""

    def __init__(
        self,
        stem: str,
        documents: list[dict[str, Any]],
        chunks: list[list[Any]],
        directory: str | None,
        max_bytes: int,
        claimed_path: str | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.stem = stem
        self.documents = documents
        self.chunks = chunks
        self.directory = directory
        self.max_bytes = max_bytes
        #: The spool file this process holds for the job (write-ahead or drain claim).
        self.claimed_path = claimed_path
        #: Per exporter (by position), the indices of the chunks it acknowledged.
        self.acked: list[set[int]] = []
        self.done = False
        self.closed = False

    def remaining(self) -> list[int]:
        return [k for k in range(len(self.chunks)) if not self.acked or any(k not in a for a in self.acked)]

    def write_ahead(self) -> None:
        if self.directory is None:
            return
        try:
            payload = otlp_json.encode_lines(self.documents)
            self.claimed_path = spool.write_file(self.directory, spool.claim_name(self.stem), payload)
        except OSError as exc:
            _log.warning("otel-coldstart: cannot write the spool in %s: %s", self.directory, exc)

    def send(self, exporters: Sequence[Any], keep_going: Callable[[], bool]) -> bool:
        """Send the unacknowledged chunks; ``True`` when every exporter has every chunk."""
        if not self.acked:
            self.acked = [set() for _ in exporters]
        for index, exporter in enumerate(exporters):
            for k, chunk in enumerate(self.chunks):
                if k in self.acked[index]:
                    continue
                if self.closed or not keep_going():
                    return False
                try:
                    ok = _success(exporter.export(chunk))
                except Exception:  # an exporter bug must cost us the chunk, never the app
                    ok = False
                with self.lock:
                    if self.closed:
                        return False  # cut off meanwhile: the chunk is spooled (at-least-once corner)
                    if not ok:
                        break  # this exporter is failing; the next one may still work
                    self.acked[index].add(k)
        with self.lock:
            if self.closed or self.remaining():
                return False
            self.done = True
            if self.claimed_path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.claimed_path)
                self.claimed_path = None
            return True

    def release(self) -> str | None:
        """Give what is not acknowledged back to the spool as a free file. Call with ``lock`` held."""
        if self.done:
            return None
        remaining = self.remaining()
        path = None
        try:
            if not remaining:
                if self.claimed_path:
                    os.unlink(self.claimed_path)
            elif self.claimed_path and len(remaining) == len(self.chunks):
                path = spool.release(self.claimed_path, self.stem)
            elif self.directory is not None:
                payload = otlp_json.encode_lines(self.documents[k] for k in remaining)
                path = spool.write_file(self.directory, spool.free_name(self.stem), payload)
                if self.claimed_path:
                    os.unlink(self.claimed_path)
        except OSError as exc:
            _log.warning("otel-coldstart: cannot spool the cold-start trace in %s: %s", self.directory, exc)
        self.claimed_path = None
        self.done = True
        if path is not None:
            spool.enforce_cap(os.path.dirname(path), self.max_bytes)
        return path


def _give_back(job: Job, warn: bool = False) -> str | None:
    """The sender stops trying: release the job unless the exit's cut-off already did."""
    with job.lock:
        if job.closed:
            return None
        job.closed = True
        path = job.release()
    if path and warn:
        _log.warning("otel-coldstart: cold-start trace export failed; spooled to %s", path)
    return path


def _register(job: Job) -> bool:
    with _jobs_lock:
        if _exiting.is_set() and _exit_deadline is not None and time.monotonic() > _exit_deadline:
            return False  # past the cut-off: nobody would release it
        _jobs.append(job)
        return True


def _unregister(job: Job) -> None:
    with _jobs_lock, contextlib.suppress(ValueError):
        _jobs.remove(job)


def spool_settings(settings: config.Settings) -> tuple[str | None, int]:
    directory = settings.spool_dir or spool.default_dir()
    if directory.strip().lower() in ("none", "off", "false", "0"):
        return None, 0
    return directory, settings.spool_max_bytes


def job_for_spans(spans: Sequence[Any], settings: config.Settings) -> Job:
    chunks = [list(spans[i : i + EXPORT_CHUNK]) for i in range(0, len(spans), EXPORT_CHUNK)]
    directory, max_bytes = spool_settings(settings)
    return Job(spool.new_stem(), [otlp_json.encode(chunk) for chunk in chunks], chunks, directory, max_bytes)


def bounded(exporters: Sequence[Any], timeout_s: float) -> list[Any]:
    """Exporters like ``exporters`` whose own deadline (retries included) is ``timeout_s``.

    The OTLP exporters take ``timeout`` as the budget of one ``export()`` call, retries and
    backoff included (opentelemetry-exporter-otlp-proto-{grpc,http}); others are used as they
    are and only the join deadline bounds them.
    """
    out = []
    for exporter in exporters:
        cls = type(exporter)
        if cls.__module__.startswith("opentelemetry.exporter.otlp"):
            try:
                out.append(cls(timeout=max(0.05, timeout_s)))
                continue
            except Exception:
                pass
        out.append(exporter)
    return out


def deliver(exporters: Sequence[Any], spans: Sequence[Any], settings: config.Settings) -> bool:
    """Send this process's cold start; on failure keep it spooled and, unless exiting, retry."""
    if not exporters or not spans:
        return True  # OTEL_TRACES_EXPORTER=none (the trace file is the sink): nothing to deliver
    job = job_for_spans(spans, settings)
    job.write_ahead()
    if not _register(job):
        with job.lock:
            job.release()
        return False
    try:
        if job.send(exporters, lambda: True):
            return True
        if _exiting.is_set():
            _give_back(job, warn=True)
            return False
        _log.warning("otel-coldstart: cold-start trace export failed; spooled, retrying in the background")
        started = time.monotonic()
        window = settings.retry_s
        attempt = 0
        while time.monotonic() - started < window:
            delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
            attempt += 1
            if _exiting.wait(min(delay, max(0.0, window - (time.monotonic() - started)))):
                break
            if job.send(exporters, lambda: not _exiting.is_set()):
                return True
        _give_back(job, warn=True)
        return False
    finally:
        _unregister(job)


@dataclass
class DrainResult:
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    #: Files claimed by another live process (it is sending them).
    held: int = 0


def drain(
    exporters: Sequence[Any],
    directory: str,
    keep_going: Callable[[], bool] = lambda: True,
    max_bytes: int = spool.DEFAULT_MAX_BYTES,
    stop_on_failure: bool = True,
) -> DrainResult:
    """Send the spooled cold starts of earlier processes, oldest first, each file claimed first."""
    result = DrainResult()
    if not exporters:
        return result  # nowhere to send them: leave them for a process that has an exporter
    for entry in spool.list_entries(directory):
        if not keep_going():
            break
        if entry.claimed_by is not None and not entry.stale():
            if entry.claimed_by[0] != os.getpid():
                result.held += 1
            continue
        claimed = spool.claim(entry)
        if claimed is None:
            continue  # another drain was first
        try:
            documents = spool.read_documents(claimed)
            chunks = [spool.spans_from_document(document) for document in documents]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            bad = os.path.join(directory, f"{entry.stem}.bad")
            with contextlib.suppress(OSError):
                os.rename(claimed, bad)
            _log.warning("otel-coldstart: unreadable spool file moved to %s: %s", bad, exc)
            result.bad.append(bad)
            continue
        job = Job(entry.stem, documents, chunks, directory, max_bytes, claimed_path=claimed)
        if not _register(job):
            with job.lock:
                job.release()
            break
        try:
            if job.send(exporters, keep_going):
                result.sent.append(entry.path)
                continue
            _give_back(job)
            result.failed.append(entry.path)
            if stop_on_failure:
                break
        finally:
            _unregister(job)
    return result


def after_ready(exporters: Sequence[Any], spans: Sequence[Any], settings: config.Settings) -> None:
    """The worker's export after the ready moment: own trace (with retry), then the spool."""
    try:
        if deliver(exporters, spans, settings) and settings.spool_drain:
            directory, max_bytes = spool_settings(settings)
            if directory is not None:
                drained = drain(exporters, directory, lambda: not _exiting.is_set(), max_bytes)
                if drained.sent:
                    _log.info("otel-coldstart: sent %d spooled cold start(s)", len(drained.sent))
    finally:
        if not _exiting.is_set():
            for exporter in exporters:
                with contextlib.suppress(Exception):
                    exporter.shutdown()


def at_exit(
    exporters: Sequence[Any], spans: Sequence[Any], settings: config.Settings, deadline: float
) -> None:
    """The export thread at exit: bounded exporters, own trace, then the spool if time is left."""
    budget = settings.exit_timeout_s
    # Leave the exporter a little less than the deadline, so that in the common case it gives up
    # on its own and the main thread's cut-off finds nothing in flight.
    bounded_exporters = bounded(exporters, 0.9 * (deadline - time.monotonic()))
    if not deliver(bounded_exporters, spans, settings) or not settings.spool_drain:
        return
    directory, max_bytes = spool_settings(settings)
    if directory is None or deadline - time.monotonic() < EXIT_DRAIN_SHARE * budget:
        return
    drain(
        bounded(exporters, 0.9 * (deadline - time.monotonic())),
        directory,
        lambda: deadline - time.monotonic() > EXIT_DRAIN_SHARE * budget,
        max_bytes,
    )


def begin_exit(deadline: float) -> None:
    """Exit has begun: stop retrying and draining; only the bounded exit export goes on."""
    global _exit_deadline
    _exit_deadline = deadline
    _exiting.set()


def cut_off() -> list[str]:
    """Release every job still in flight back to the spool (main thread, at the exit deadline).

    Local work only: a rename per job, or one small write where part of a trace was acknowledged.
    Returns the spool files written.
    """
    written = []
    with _jobs_lock:
        jobs = list(_jobs)
    for job in jobs:
        # A sender holds the job's lock only for local bookkeeping; never wait long for it.
        if not job.lock.acquire(timeout=0.2):
            continue
        try:
            if job.closed:
                continue
            job.closed = True
            path = job.release()
            if path:
                written.append(path)
        finally:
            job.lock.release()
    return written


def reset_after_fork() -> None:
    """The child owns none of the parent's jobs or claims."""
    global _jobs_lock, _exit_deadline
    _jobs_lock = threading.Lock()
    _jobs.clear()
    _exit_deadline = None
    _exiting.clear()


# --- otel-coldstart flush -----------------------------------------------------------------------


def _endpoint() -> str:
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    default = "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318"
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", default
    )
    return f"{endpoint} ({protocol})"


def env_exporters(timeout_s: float) -> list[Any]:
    """The trace exporters that the standard ``OTEL_*`` variables configure, as the SDK builds them."""
    from opentelemetry.sdk._configuration import _get_exporter_names, _import_exporters

    # Our distro's defaults (distro.DEFAULTS), so that flush talks to the same port as the app.
    os.environ.setdefault("OTEL_TRACES_EXPORTER", "otlp")
    os.environ.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    classes = _import_exporters(_get_exporter_names("traces"), [], [])[0]
    exporters = []
    for cls in classes.values():
        try:
            exporters.append(cls(timeout=timeout_s))  # type: ignore[call-arg]  # OTLP exporters take it
        except TypeError:
            exporters.append(cls())
    return exporters


def flush(spool_dir: str | None, timeout_s: float = 5.0) -> int:
    """``otel-coldstart flush``: send the spool now. 0 all sent (or nothing to send), 2 not all sent."""
    from otel_coldstart import config

    directory = spool_dir or config.load()[0].spool_dir or spool.default_dir()
    waiting = [e for e in spool.list_entries(directory) if e.claimed_by is None or e.stale()]
    if not waiting:
        print(f"otel-coldstart: nothing to flush in {directory}")
        return 0
    # The exporters log every failed attempt; the outcome is reported below, in one line.
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    logging.getLogger("otel_coldstart").setLevel(logging.ERROR)
    try:
        exporters = env_exporters(timeout_s)
    except Exception as exc:
        print(f"otel-coldstart: error: cannot configure the trace exporter: {exc}", file=sys.stderr)
        return 2
    if not exporters:
        print(
            "otel-coldstart: error: OTEL_TRACES_EXPORTER names no trace exporter to flush to", file=sys.stderr
        )
        return 2
    result = drain(exporters, directory, max_bytes=0)
    for exporter in exporters:
        with contextlib.suppress(Exception):
            exporter.shutdown()
    held = f"; {result.held} held by running processes" if result.held else ""
    if result.bad:
        print(
            f"otel-coldstart: error: {len(result.bad)} unreadable spool file(s) moved aside: "
            + ", ".join(result.bad),
            file=sys.stderr,
        )
    if result.failed:
        left = len(waiting) - len(result.sent) - len(result.bad)
        print(
            f"otel-coldstart: error: collector unreachable at {_endpoint()}: sent {len(result.sent)} of "
            f"{len(waiting)} spooled cold start(s); {left} left in {directory}{held}",
            file=sys.stderr,
        )
        return 2
    print(f"otel-coldstart: sent {len(result.sent)} spooled cold start(s) to {_endpoint()}{held}")
    return 2 if result.bad else 0
