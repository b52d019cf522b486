"""Deliver the cold-start trace exactly once if we can, at least once if we must, and never hold exit.

A cold start happens once per process: a failed export loses it for good, and an exporter that
waits at exit adds to the time we measure. So:

- **Write-ahead.** Before the spans are even built, the raw copy of the cold start is in the spool
  under a name that this process claims (see ``spool.py``, ``raw_copy.py``, ``delivery.py``). A
  process killed at any point leaves a claim that the next drain recovers; a clean export deletes it.
- **Acknowledged chunks only.** The trace goes out in chunks; each chunk's acknowledgement by
  each exporter is recorded. Whatever is not acknowledged when we stop trying goes back to the
  spool; whatever was acknowledged never does.
- **Bounded exit.** At exit the export runs on the main thread (an exiting 3.12+ interpreter
  refuses new threads) with exporters whose own timeout fits the remaining exit budget; then the
  exit *cuts off*: it releases every claim still held (a rename, or a small local write when part
  of a trace was acknowledged). The one at-least-once corner: a chunk in flight on a background
  thread at the cut-off may have reached the collector although its answer had not; it is spooled
  and may arrive twice.
- **One sink's failure is its own.** The trace file, each exporter and the spool fail separately.
  A file the collector refuses for good (an HTTP 4xx other than 401/403/407/408/429, e.g. 413) is
  quarantined (``*.rejected``, warned, counted), never retried ahead of newer cold starts.
- **Retry, then drain.** A process that keeps running after ready retries in the background
  (``OTEL_PYTHON_COLDSTART_RETRY_SECONDS``) and, once its own trace is through, sends what earlier
  processes spooled (building the spans of raw copies). ``otel-coldstart flush`` does the latter on
  demand.
"""

from __future__ import annotations

import os
import time

from otel_coldstart.deliver import lazy_log, otlp_json, spool
from otel_coldstart.record import threads

TYPE_CHECKING = False
if TYPE_CHECKING:  # the exit of every traced process imports this module: no typing, no logging
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    from otel_coldstart import config

_log = lazy_log.logger

#: Spans per export call: well under the 4 MiB default gRPC message limit for import spans.
EXPORT_CHUNK = 512
#: Background retry delays (seconds) after a failed export, the last one repeating.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
#: At exit, send earlier processes' spool only if at least this share of the exit budget is left.
EXIT_DRAIN_SHARE = 0.4

_exiting = threads.Flag()
_exit_deadline: float | None = None
_jobs_lock = threads.allocate_lock()
_jobs: list[Job] = []
#: HTTP statuses that say "this collector is not taking anything now", not "never this file".
_TRANSIENT_4XX = frozenset({401, 403, 407, 408, 429})


def _success(result: Any) -> bool:
    from opentelemetry.sdk.trace.export import SpanExportResult

    return result is SpanExportResult.SUCCESS


def _watch(exporter: Any) -> None:
    """Record the HTTP status of the OTLP/HTTP exporter's last request on the exporter.

    ``SpanExporter.export`` only says SUCCESS or FAILURE; the status tells a collector that is
    down (retry later) from one that refuses this payload for good (quarantine it).
    """
    client: Any = getattr(exporter, "_client", None)
    send = getattr(client, "export", None)
    if send is None or getattr(send, "_coldstart_watched", False):
        return

    def watched(*args: Any, **kwargs: Any) -> Any:
        result = send(*args, **kwargs)
        exporter._coldstart_status = getattr(result, "status_code", None)
        return result

    watched._coldstart_watched = True  # type: ignore[attr-defined]
    try:
        client.export = watched
    except AttributeError:
        pass


def _export_uninstrumented(exporter: Any, chunk: list[Any]) -> Any:
    """``exporter.export(chunk)`` with instrumentation suppressed, as the SDK's span processors
    do: the exporter's own HTTP request must not become a span of the app (requests instrumented)."""
    from opentelemetry import context

    token = context.attach(context.set_value(context._SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        return exporter.export(chunk)
    finally:
        context.detach(token)


def rejection(exporter: Any) -> int | None:
    """The status of the exporter's last failed request if it means "never this payload"."""
    status = getattr(exporter, "_coldstart_status", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in _TRANSIENT_4XX:
        return status
    return None


def chunked(spans: Sequence[Any]) -> list[list[Any]]:
    return [list(spans[i : i + EXPORT_CHUNK]) for i in range(0, len(spans), EXPORT_CHUNK)]


class Job:
    """One cold start on its way: its chunks, who acknowledged which, and its spool file.

    The spool file is the raw copy (``raw``: this process's own cold start, or a raw spool entry
    being built) or OTLP ``documents`` (what was left of a partly acknowledged trace).
    """

    def __init__(
        self,
        stem: str,
        chunks: list[list[Any]] | None,
        directory: str | None,
        max_bytes: int,
        claimed_path: str | None = None,
        documents: list[dict[str, Any]] | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        self.lock = threads.allocate_lock()
        self.stem = stem
        #: ``None`` until the spans are built (a raw copy only).
        self.chunks = chunks
        self._documents = documents
        self.raw = raw
        #: The raw copy's trace file was written since the copy was: never write it twice.
        self.trace_file_done = False
        self.directory = directory
        self.max_bytes = max_bytes
        #: The spool file this process holds for the job (write-ahead or drain claim).
        self.claimed_path = claimed_path
        #: Per exporter (by position), the indices of the chunks it acknowledged.
        self.acked: list[set[int]] = []
        #: The HTTP status with which a collector refused this trace for good.
        self.rejected: int | None = None
        self.done = False
        self.closed = False
        #: Someone is building the spans (the worker after ready, or the exit): one builder only.
        self.building = False
        #: The last builder failed and handed the job back (``delivery.retry_at_exit``).
        self.build_failed = False
        #: The built root span's context (links from the Lambda first invocation, child processes).
        self.root_context: Any = None
        #: Set when the builder is through (spans built and the trace file written, or failed).
        self.built = threads.Flag()
        #: Where ``release`` put what was left.
        self.spooled_to: str | None = None
        #: How many exporters the last ``send`` had: with none, the trace file was the only sink.
        self.exporter_count: int | None = None

    def documents(self, indices: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """OTLP JSON documents of the chunks (all, or ``indices``), encoded on first use."""
        if self._documents is None:
            self._documents = [otlp_json.encode(chunk) for chunk in self.chunks or []]
        if indices is None:
            return self._documents
        return [self._documents[k] for k in indices]

    def remaining(self) -> list[int]:
        chunks = self.chunks or []
        if self.exporter_count == 0:
            return []
        if not self.acked:
            return list(range(len(chunks)))
        return [k for k in range(len(chunks)) if any(k not in a for a in self.acked)]

    def write_trace_file(self, path: str, documents: list[dict[str, Any]] | None = None) -> None:
        """The trace file sink: once per cold start. Its failure is warned, never the others'.

        ``documents``: the trace as built without the SDK (``light_trace.py``), else the chunks'."""
        with self.lock:
            if self.closed or self.trace_file_done:
                return
            try:
                otlp_json.append_lines(path, self.documents() if documents is None else documents)
            except OSError as exc:
                _log.warning("otel-coldstart: cannot write the trace file %s: %s", path, exc)
            # Done either way: a file we cannot write now would only be retried into duplicates.
            self.trace_file_done = True

    def send(self, exporters: Sequence[Any], keep_going: Callable[[], bool]) -> bool:
        """Send the unacknowledged chunks; ``True`` when every exporter has every chunk."""
        chunks = self.chunks or []
        self.exporter_count = len(exporters)
        if not self.acked:
            self.acked = [set() for _ in exporters]
        for index, exporter in enumerate(exporters):
            _watch(exporter)
            for k, chunk in enumerate(chunks):
                if k in self.acked[index]:
                    continue
                if self.closed or not keep_going():
                    return False
                exporter._coldstart_status = None
                try:
                    ok = _success(_export_uninstrumented(exporter, chunk))
                except Exception:  # an exporter bug must cost us the chunk, never the app
                    ok = False
                with self.lock:
                    if self.closed:
                        return False  # cut off meanwhile: the chunk is spooled (at-least-once corner)
                    if not ok:
                        status = rejection(exporter)
                        if status is not None:
                            self.rejected = status
                        break  # this exporter is failing; the next one may still work
                    self.acked[index].add(k)
        with self.lock:
            if self.closed or self.remaining():
                return False
            self.done = True
            if self.claimed_path:
                try:
                    os.unlink(self.claimed_path)
                except FileNotFoundError:
                    pass
                self.claimed_path = None
            return True

    def release(self) -> str | None:
        """Give what is not acknowledged back to the spool as a free file (or quarantine it, if a
        collector refused it for good). Call with ``lock`` held."""
        if self.done:
            return None
        remaining = self.remaining()
        untouched = self.chunks is None or len(remaining) == len(self.chunks)
        path = None
        try:
            if not untouched and not remaining:
                if self.claimed_path:
                    os.unlink(self.claimed_path)
            elif untouched and self.raw is not None and self.trace_file_done and self.raw.get("trace_file"):
                path = self._rewrite_raw()
            elif untouched and self.claimed_path:
                move = spool.quarantine if self.rejected is not None else spool.release
                path = move(self.claimed_path, self.stem)
            elif self.directory is not None and self.chunks is not None:
                payload = otlp_json.encode_lines(self.documents(remaining))
                path = spool.write_file(self.directory, self._free_name(spool.OTLP), payload)
                if self.claimed_path:
                    os.unlink(self.claimed_path)
        except OSError as exc:
            _log.warning("otel-coldstart: cannot spool the cold-start trace in %s: %s", self.directory, exc)
        self.claimed_path = None
        self.done = True
        self.spooled_to = path
        if path is not None and self.rejected is not None:
            _log.warning(
                "otel-coldstart: the collector refused a cold-start trace (HTTP %d); quarantined as %s",
                self.rejected,
                path,
            )
        elif path is not None:
            spool.enforce_cap(os.path.dirname(path), self.max_bytes)
        return path

    def _free_name(self, kind: str) -> str:
        name = spool.free_name(self.stem, kind)
        return name + ".rejected" if self.rejected is not None else name

    def _rewrite_raw(self) -> str | None:
        """The raw copy again, minus the trace file it has already been written to."""
        from otel_coldstart.deliver import raw_copy

        assert self.raw is not None and self.directory is not None
        raw = {**self.raw, "trace_file": None}
        path = spool.write_file(self.directory, self._free_name(spool.RAW), raw_copy.encode(raw))
        if self.claimed_path:
            os.unlink(self.claimed_path)
        return path


def _give_back(job: Job, warn: bool = False) -> str | None:
    """The sender stops trying: release the job unless the exit's cut-off already did."""
    with job.lock:
        if job.closed:
            return None
        job.closed = True
        path = job.release()
    if path and warn and job.rejected is None:
        _log.warning("otel-coldstart: cold-start trace export failed; spooled to %s", path)
    return path


def register(job: Job) -> bool:
    """Make ``job`` one the exit's cut-off releases. ``False`` once past the cut-off."""
    with _jobs_lock:
        if _exiting.is_set() and _exit_deadline is not None and time.monotonic() > _exit_deadline:
            return False  # past the cut-off: nobody would release it
        _jobs.append(job)
        return True


def _unregister(job: Job) -> None:
    with _jobs_lock:
        try:
            _jobs.remove(job)
        except ValueError:
            pass


def spool_settings(settings: config.Settings) -> tuple[str | None, int]:
    directory = settings.spool_dir or spool.default_dir()
    if directory.strip().lower() in ("none", "off", "false", "0"):
        return None, 0
    return directory, settings.spool_max_bytes


def bounded(exporters: Sequence[Any], timeout_s: float) -> list[Any]:
    """Exporters like ``exporters`` whose own deadline (retries included) is ``timeout_s``.

    The OTLP exporters take ``timeout`` as the budget of one ``export()`` call, retries and
    backoff included (opentelemetry-exporter-otlp-proto-{grpc,http}); others are used as they
    are and only the exit deadline bounds them.
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


def job_for_spans(spans: Sequence[Any], settings: config.Settings) -> Job | None:
    """A job for spans that have no raw copy (a Lambda's first invocation): their OTLP documents
    are the write-ahead copy, claimed. ``None`` once past the exit's cut-off."""
    directory, max_bytes = spool_settings(settings)
    stem = spool.new_stem()
    job = Job(stem, chunked(spans), directory, max_bytes)
    if directory is not None:
        try:
            payload = otlp_json.encode_lines(job.documents())
            job.claimed_path = spool.write_file(directory, spool.claim_name(stem), payload)
        except OSError as exc:
            _log.warning("otel-coldstart: cannot write the spool in %s: %s", directory, exc)
    if not register(job):
        with job.lock:
            job.release()
        return None
    return job


def deliver(exporters: Sequence[Any], job: Job | Sequence[Any], settings: config.Settings) -> bool:
    """Send a cold start (``job``, registered when its raw copy was written; or plain spans); on
    failure keep it spooled and, unless exiting, retry."""
    if not isinstance(job, Job):
        if not exporters or not job:
            return True  # nowhere to send them, or nothing to send
        made = job_for_spans(job, settings)
        if made is None:
            return False
        job = made
    try:
        if job.send(exporters, lambda: True):
            return True
        if _exiting.is_set() or job.rejected is not None or job.closed:
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
            if job.rejected is not None:
                break
        _give_back(job, warn=True)
        return False
    finally:
        _unregister(job)


class DrainResult:
    """What a drain did (a plain class: ``dataclasses`` would cost every traced exit its import)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.failed: list[str] = []
        self.bad: list[str] = []
        #: Refused by the collector for good (HTTP 4xx): set aside as ``*.rejected``.
        self.quarantined: list[str] = []
        #: Interrupted writes saved as spool files (then drained like any other).
        self.recovered: list[str] = []
        #: Files claimed by another live process (it is sending them).
        self.held = 0

    def __repr__(self) -> str:
        return f"DrainResult({vars(self)!r})"


def _job_for_entry(entry: spool.Entry, claimed: str, exporters: Sequence[Any], max_bytes: int) -> Job | None:
    """The job for a claimed spool file; ``None`` if it has nothing for these sinks."""
    directory = os.path.dirname(claimed)
    if entry.kind == spool.OTLP:
        documents = spool.read_documents(claimed)
        chunks = [spool.spans_from_document(document) for document in documents]
        return Job(entry.stem, chunks, directory, max_bytes, claimed_path=claimed, documents=documents)
    raw = spool.read_raw(claimed)
    trace_file = raw.get("trace_file")
    if not exporters and not trace_file:
        return None
    from otel_coldstart.deliver import sdk_setup

    job = Job(entry.stem, chunked(sdk_setup.build_from_raw(raw)), directory, max_bytes, claimed, raw=raw)
    if trace_file:
        job.write_trace_file(trace_file)
    return job


def drain(
    exporters: Sequence[Any],
    directory: str,
    keep_going: Callable[[], bool] = lambda: True,
    max_bytes: int = spool.DEFAULT_MAX_BYTES,
    stop_on_failure: bool = True,
    build_raw: bool = True,
) -> DrainResult:
    """Deliver the spooled cold starts of earlier processes, oldest first, each file claimed first.

    Raw copies are built into spans here (``build_raw``; not at exit, where there is no time for
    it) and written to the trace file they name. Without exporters only that can happen.
    """
    result = DrainResult()
    result.recovered, removed = spool.recover_orphans(directory)
    result.bad.extend(removed)
    for entry in spool.list_entries(directory):
        if not keep_going():
            break
        if entry.claimed_by is not None and not entry.stale():
            if entry.claimed_by[0] != os.getpid():
                result.held += 1
            continue
        if (entry.kind == spool.RAW and not build_raw) or (entry.kind == spool.OTLP and not exporters):
            continue
        claimed = spool.claim(entry)
        if claimed is None:
            continue  # another drain was first
        try:
            job = _job_for_entry(entry, claimed, exporters, max_bytes)
        except Exception as exc:  # unreadable, or a raw copy this version cannot build
            bad = os.path.join(directory, f"{entry.stem}.bad")
            try:
                os.rename(claimed, bad)
            except OSError:
                pass
            _log.warning("otel-coldstart: unreadable spool file moved to %s: %s", bad, exc)
            result.bad.append(bad)
            continue
        if job is None:
            try:
                spool.release(claimed, entry.stem)
            except OSError:
                pass
            continue
        if not register(job):
            with job.lock:
                job.release()
            break
        try:
            if job.send(exporters, keep_going):
                result.sent.append(entry.path)
                continue
            _give_back(job)
            if job.rejected is not None:
                result.quarantined.append(job.spooled_to or entry.path)
                continue
            result.failed.append(entry.path)
            if stop_on_failure:
                break
        finally:
            _unregister(job)
    return result


def drain_after_ready(exporters: Sequence[Any], settings: config.Settings) -> None:
    """A living process, its own trace through: send what earlier processes spooled."""
    if not settings.spool_drain:
        return
    directory, max_bytes = spool_settings(settings)
    if directory is None:
        return
    drained = drain(exporters, directory, lambda: not _exiting.is_set(), max_bytes)
    if drained.sent:
        _log.info("otel-coldstart: sent %d spooled cold start(s)", len(drained.sent))


def drain_at_exit(exporters: Sequence[Any], settings: config.Settings, deadline: float) -> None:
    """At exit, if enough of the budget is left: send earlier OTLP spool files (no building)."""
    budget = settings.exit_timeout_s
    directory, max_bytes = spool_settings(settings)
    if not exporters or directory is None or not settings.spool_drain:
        return
    if deadline - time.monotonic() < EXIT_DRAIN_SHARE * budget:
        return
    drain(
        bounded(exporters, 0.9 * (deadline - time.monotonic())),
        directory,
        lambda: deadline - time.monotonic() > EXIT_DRAIN_SHARE * budget,
        max_bytes,
        build_raw=False,
    )


def shutdown(exporters: Sequence[Any]) -> None:
    for exporter in exporters:
        try:
            exporter.shutdown()
        except Exception:
            pass


def begin_exit(deadline: float) -> None:
    """Exit has begun: stop retrying and draining; only the bounded exit export goes on."""
    global _exit_deadline
    _exit_deadline = deadline
    _exiting.set()


def end_exit() -> None:
    """The process lives on after ``finish_now`` (a thawed Lambda): background work may resume."""
    global _exit_deadline
    _exit_deadline = None
    _exiting.clear()


def exiting() -> bool:
    return _exiting.is_set()


def cut_off() -> list[str]:
    """Release every job still in flight back to the spool (main thread, at the exit deadline).

    Local work only: a rename per job, or one small write where part of a trace was acknowledged.
    Returns the spool files written.
    """
    written = []
    with _jobs_lock:
        jobs = list(_jobs)
    for job in jobs:
        # A sender holds the job's lock only for local bookkeeping; never wait long for it. If it
        # does not let go, its claim outlives this process and the next drain recovers it.
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
    _jobs_lock = threads.allocate_lock()
    _jobs.clear()
    _exit_deadline = None
    _exiting.clear()
