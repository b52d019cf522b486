"""The on-disk spool: cold starts that could not be delivered yet.

One file is one cold start, in one of two forms:

- a *raw copy* (``raw_copy.py``): the frozen timeline, written first and synchronously, before any
  span exists; whoever drains it builds the spans;
- OTLP JSON lines: what is left of a trace that was partly acknowledged; each line is one
  ``ExportTraceServiceRequest`` document (one export chunk), so ``otel-coldstart validate FILE``
  reads it like any trace file.

Ownership is carried by the file's *name*, and names change only by ``rename(2)``, which is atomic:

- ``<ns>-<pid>-<rand>.jsonl`` (OTLP) and ``<ns>-<pid>-<rand>.raw2`` (raw copy) are free: any process
  may take them (a drain, ``otel-coldstart flush``). ``.raw`` is a raw copy an earlier version
  wrote (format 1): read and sent as well. Copies this version writes are ``.raw2``, a name older
  versions do not list: one of them sharing the spool would otherwise find a format it cannot read
  and set the cold start aside as unreadable.
- ``<stem>.claim-<pid>-<host>`` (OTLP) and ``<stem>.raw2claim-<pid>-<host>`` (``.rawclaim-`` for a
  ``.raw``) are held by that process,
  which is sending them. A process writes its own cold start straight under a claimed name before it
  builds or sends (write-ahead), so a process killed at any point (SIGKILL, OOM) leaves a claim that
  the next drain recovers once the holder is gone: nothing is lost, and no two live processes ever
  send the same file.
- ``<free name>.rejected``: quarantined, the collector refused it for good (an HTTP 4xx other than
  429): kept for a human, counted by ``flush``, never retried ahead of newer files.
- ``.<name>.<pid>.tmp``: being written. Left behind only by a process killed mid-write; the next
  drain recovers it (complete: renamed to its free name) or removes it (partial), with a warning.

Files are created 0600 in a 0700 directory: traces carry command lines and paths.
"""

from __future__ import annotations

import os
import time

from otel_coldstart import config
from otel_coldstart.deliver import lambda_sandbox, lazy_log, otlp_json

# Every traced process writes its raw copy through this module, at exit: logging, re, socket,
# typing and dataclasses stay off that path (~10 ms on a busy machine); listing the spool is a
# drainer's work and compiles the patterns then.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

_log = lazy_log.logger

#: ``OTEL_PYTHON_COLDSTART_SPOOL_MAX_BYTES`` default (spelled in ``config.Settings``): hundreds of
#: cold starts, never a full disk.
DEFAULT_MAX_BYTES: int = config.Settings.spool_max_bytes
#: A claim older than this is stale even if its holder's pid looks alive (pid reuse, other hosts).
STALE_CLAIM_S = 15 * 60

#: A ``.tmp`` file whose writer is gone is recovered after this long (the writer's pid may be a
#: live process of another container sharing the volume: then only age tells).
ORPHAN_TMP_S = 2.0

_STEM = r"(?P<stem>\d+-\d+-[0-9a-f]+)"
_PATTERNS: dict[str, Any] = {}


def _pattern(name: str) -> Any:
    """The compiled file-name pattern ``name`` (free, claimed, rejected, tmp)."""
    if not _PATTERNS:
        import re

        _PATTERNS["free"] = re.compile(rf"^{_STEM}\.(?P<ext>jsonl|raw2?)$")
        _PATTERNS["claimed"] = re.compile(rf"^{_STEM}\.(?P<ext>claim|raw2?claim)-(?P<pid>\d+)-(?P<host>.*)$")
        _PATTERNS["rejected"] = re.compile(rf"^{_STEM}\.(jsonl|raw2?)\.rejected$")
        _PATTERNS["tmp"] = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")
    return _PATTERNS[name]


#: Entry kinds: OTLP JSON lines, or a raw copy of the timeline.
OTLP, RAW = "otlp", "raw"
#: A free file's extension -> its claimed one. ``raw`` is an earlier version's raw copy.
_CLAIMED = {"jsonl": "claim", "raw": "rawclaim", "raw2": "raw2claim"}
_FREE = {claimed: free for free, claimed in _CLAIMED.items()}
#: The extension of the raw copies this version writes (``raw_copy.VERSION`` 2 and up).
RAW_EXT = "raw2"


def default_dir() -> str:
    """``$XDG_CACHE_HOME/otel-coldstart/spool``, else ``~/.cache/otel-coldstart/spool`` (in a Lambda
    sandbox ``/tmp/otel-coldstart/spool``)."""
    if not os.environ.get("XDG_CACHE_HOME") and lambda_sandbox.in_lambda():
        return lambda_sandbox.SPOOL_DIR
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "otel-coldstart", "spool")


def _host() -> str:
    # Containers sharing a spool volume have distinct hostnames but may reuse pids.
    name = os.uname().nodename if hasattr(os, "uname") else ""  # socket.gethostname(), no socket
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else "_" for c in name) or "localhost"


def new_stem() -> str:
    """A unique, time-ordered file stem: oldest first is plain name order."""
    return f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}"


def free_name(stem: str, kind: str = OTLP, ext: str | None = None) -> str:
    """The free name of a new file of ``kind``, or of one whose free extension is ``ext``."""
    return f"{stem}.{ext or (RAW_EXT if kind == RAW else 'jsonl')}"


def claim_name(stem: str, kind: str = OTLP, ext: str | None = None) -> str:
    """The name this process claims a file under: a new file of ``kind``, or the free file whose
    extension is ``ext`` (a ``.raw`` keeps its format's name: ``.rawclaim``)."""
    free = ext or (RAW_EXT if kind == RAW else "jsonl")
    return f"{stem}.{_CLAIMED[free]}-{os.getpid()}-{_host()}"


def _extension(path: str) -> str:
    # The names we write are ``<stem>.<ext>`` or ``<stem>.<ext>-<pid>-<host>``, and a stem has no
    # dot: no pattern (and no ``re``) on the exit's release path.
    return os.path.basename(path).partition(".")[2].partition("-")[0]


def free_extension(path: str) -> str:
    """The free extension (``jsonl``, ``raw``, ``raw2``) of a free or claimed spool file."""
    ext = _extension(path)
    return _FREE.get(ext, ext)


def kind_of(path: str) -> str:
    """The kind of a free or claimed spool file, from its name."""
    return RAW if free_extension(path) in ("raw", "raw2") else OTLP


def write_file(directory: str, name: str, payload: bytes) -> str:
    """Write ``payload`` to ``directory/name`` atomically (temp file + rename), mode 0600."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, name)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the mode given to open() is narrowed by the umask, never widened: be exact
        otlp_json.write_all(fd, payload)
    finally:
        os.close(fd)
    # No fsync: the spool guards against the process dying, not the machine; an fsync costs
    # milliseconds to seconds on a busy disk, at exit, which is the time we promise to bound.
    os.rename(tmp, path)
    return path


def read_documents(path: str) -> list[dict[str, Any]]:
    """The OTLP JSON documents of one spool file; raises ``ValueError`` if it is not one."""
    import json  # reading the spool is flush's and the drain's work, not the exit's

    documents = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                document = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(document, dict) or not isinstance(document.get("resourceSpans"), list):
                raise ValueError(f"{path}:{number}: not an OTLP JSON trace document")
            documents.append(document)
    return documents


def read_raw(path: str) -> dict[str, Any]:
    """The raw copy in one spool file; raises ``ValueError`` if it is not one."""
    from otel_coldstart.deliver import raw_copy

    with open(path, "rb") as handle:
        try:
            return raw_copy.decode(handle.read())
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


class Entry:
    """A spool file as listed: free, or claimed by ``pid`` on ``host``. Immutable."""

    __slots__ = ("claimed_by", "kind", "path", "size", "stem")
    path: str
    stem: str
    size: int
    claimed_by: tuple[int, str] | None
    kind: str

    def __init__(
        self, path: str, stem: str, size: int, claimed_by: tuple[int, str] | None = None, kind: str = OTLP
    ) -> None:
        for name, value in zip(self.__slots__, (claimed_by, kind, path, size, stem), strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def _key(self) -> tuple[Any, ...]:
        return (self.path, self.stem, self.size, self.claimed_by, self.kind)

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if type(other) is Entry else NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        path, stem, size, claimed_by, kind = self._key()
        return f"Entry({path=!r}, {stem=!r}, {size=}, {claimed_by=}, {kind=!r})"

    def stale(self, now: float | None = None) -> bool:
        """A claim whose holder is gone (same host, pid not running) or that is too old."""
        if self.claimed_by is None:
            return False
        pid, host = self.claimed_by
        try:
            changed = os.stat(self.path).st_ctime  # rename sets ctime: the claim's age
        except OSError:
            return False
        if (now if now is not None else time.time()) - changed > STALE_CLAIM_S:
            return True
        return host == _host() and not _alive(pid)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return True
    return True


def _is_stem(text: str) -> bool:
    """``<ns>-<pid>-<hex>``, as ``_STEM`` matches it."""
    parts = text.split("-")
    return (
        len(parts) == 3
        and parts[0].isdigit()
        and parts[1].isdigit()
        and parts[0].isascii()
        and parts[1].isascii()
        and bool(parts[2])
        and all(c in "0123456789abcdef" for c in parts[2])
    )


def parse_name(name: str) -> tuple[str, tuple[int, str] | None] | None:
    """``(stem, holder)`` of a free (holder ``None``) or claimed spool file's name, else ``None``.

    The ``free`` and ``claimed`` patterns without ``re``: the exit enforces the spool's cap when the
    spool is full (a collector down for long), and ``re`` (enum with it) cost it 5-10 ms."""
    stem, dot, rest = name.partition(".")
    if not dot or not _is_stem(stem):
        return None
    if rest in _CLAIMED:
        return stem, None
    ext, dash, holder = rest.partition("-")
    pid, dash2, host = holder.partition("-")
    if ext in _FREE and dash and dash2 and pid.isdigit() and pid.isascii():
        return stem, (int(pid), host)
    return None


def list_entries(directory: str) -> list[Entry]:
    """Free and claimed spool files, oldest first."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    entries = []
    for name in sorted(names):
        parsed = parse_name(name)
        if parsed is None:
            continue
        path = os.path.join(directory, name)
        try:
            size = os.stat(path).st_size
        except OSError:
            continue  # taken by another process while we listed
        stem, holder = parsed
        entries.append(Entry(path, stem, size, holder, kind_of(path)))
    return entries


def claim(entry: Entry) -> str | None:
    """Take ``entry`` for this process by renaming it; ``None`` if another process was first."""
    target = os.path.join(
        os.path.dirname(entry.path), claim_name(entry.stem, entry.kind, free_extension(entry.path))
    )
    try:
        os.rename(entry.path, target)
    except FileNotFoundError:
        return None
    return target


def release(claimed_path: str, stem: str) -> str:
    """Give a claimed file back to the spool unchanged (nothing of it was acknowledged)."""
    target = os.path.join(os.path.dirname(claimed_path), free_name(stem, ext=free_extension(claimed_path)))
    os.rename(claimed_path, target)
    return target


def quarantine(claimed_path: str, stem: str) -> str:
    """Set a claimed file aside for good: the collector refused it and always will."""
    free = free_name(stem, ext=free_extension(claimed_path))
    target = os.path.join(os.path.dirname(claimed_path), free + ".rejected")
    os.rename(claimed_path, target)
    return target


def quarantined(directory: str) -> list[str]:
    """The quarantined files, oldest first."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [os.path.join(directory, name) for name in names if _pattern("rejected").match(name)]


def recover_orphans(directory: str, now: float | None = None) -> tuple[list[str], list[str]]:
    """Deal with ``.tmp`` files whose writer is gone: a complete one becomes the free file it was
    meant to be (its cold start is saved), a partial one is removed. Returns (recovered, removed).
    """
    recovered: list[str] = []
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return recovered, removed
    now = time.time() if now is None else now
    for name in names:
        match = _pattern("tmp").match(name)
        if match is None:
            continue
        path = os.path.join(directory, name)
        try:
            age = now - os.stat(path).st_mtime
        except OSError:
            continue
        pid = int(match.group("pid"))
        if age < ORPHAN_TMP_S or (age < STALE_CLAIM_S and _alive(pid)):
            continue  # still being written
        target = match.group("name")
        parsed = _pattern("free").match(target) or _pattern("claimed").match(target)
        complete = False
        if parsed is not None:
            try:
                if kind_of(target) == RAW:
                    read_raw(path)
                    complete = True
                else:
                    complete = bool(read_documents(path))
            except (OSError, ValueError):
                complete = False
        try:
            if complete and parsed is not None:
                free = os.path.join(directory, free_name(parsed.group("stem"), ext=free_extension(target)))
                os.rename(path, free)
                recovered.append(free)
                _log.warning("otel-coldstart: recovered an interrupted spool write as %s", free)
            else:
                os.unlink(path)
                removed.append(path)
                _log.warning(
                    "otel-coldstart: removed a partial spool write %s (its writer died mid-write)", path
                )
        except FileNotFoundError:
            continue  # another drain dealt with it
    return recovered, removed


def _free_bytes_at_most(directory: str) -> int:
    """An upper bound of the free files' bytes, without ``re``: every exit that spools checks the
    cap, and importing ``re`` (enum with it) cost a program that never uses it 5-10 ms of its exit.
    Counts every name a free file can have (and maybe a stranger's file with such a name)."""
    total = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith((".jsonl", ".raw", ".raw2")) and not name.startswith("."):
                    try:
                        total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue  # taken by another process while we listed
    except OSError:
        return 0
    return total


def enforce_cap(directory: str, max_bytes: int) -> list[str]:
    """Drop the oldest free files, whole, until the free files fit in ``max_bytes``.

    Claimed files are in transit and not counted. Returns the dropped paths (each one warned).
    """
    if max_bytes <= 0:
        return []
    if _free_bytes_at_most(directory) <= max_bytes:
        return []
    free = [entry for entry in list_entries(directory) if entry.claimed_by is None]
    total = sum(entry.size for entry in free)
    dropped = []
    for entry in free:
        if total <= max_bytes:
            break
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            pass
        else:
            dropped.append(entry.path)
            _log.warning(
                "otel-coldstart: spool over %d bytes: dropped the oldest cold start %s (%d bytes)",
                max_bytes,
                entry.path,
                entry.size,
            )
        total -= entry.size
    return dropped


# --- OTLP JSON back to SDK spans --------------------------------------------------------------
#
# The spool is re-sent through the SDK exporters that the standard OTEL_EXPORTER_OTLP_* variables
# configure (gRPC or HTTP, endpoint, headers, TLS, compression, timeout), rather than POSTed as
# JSON: an OTLP JSON POST only exists for HTTP, and would duplicate the exporters' configuration
# handling. So the documents become ReadableSpan objects again, with their original ids, times,
# resource, scope, attributes, events, links and status.


#: The recorder's own AnyValue decoder (why there are two: otlp_json.py, "The other direction").
_attributes = otlp_json.attributes_from


def spans_from_document(document: dict[str, Any]) -> list[Any]:
    """One OTLP JSON trace document -> ``ReadableSpan`` objects an SDK exporter accepts."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

    kinds = {
        1: SpanKind.INTERNAL,
        2: SpanKind.SERVER,
        3: SpanKind.CLIENT,
        4: SpanKind.PRODUCER,
        5: SpanKind.CONSUMER,
    }
    codes = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}
    sampled = TraceFlags(TraceFlags.SAMPLED)
    spans = []
    for resource_spans in document.get("resourceSpans", []):
        raw_resource = resource_spans.get("resource") or {}
        resource = Resource(_attributes(raw_resource.get("attributes")), resource_spans.get("schemaUrl"))
        for scope_spans in resource_spans.get("scopeSpans", []):
            raw_scope = scope_spans.get("scope") or {}
            scope = InstrumentationScope(
                raw_scope.get("name", ""), raw_scope.get("version") or None, scope_spans.get("schemaUrl")
            )
            for raw in scope_spans.get("spans", []):
                trace_id = int(raw["traceId"], 16)
                context = SpanContext(trace_id, int(raw["spanId"], 16), is_remote=False, trace_flags=sampled)
                parent = None
                if raw.get("parentSpanId"):
                    parent = SpanContext(trace_id, int(raw["parentSpanId"], 16), False, sampled)
                status = raw.get("status") or {}
                code = codes.get(int(status.get("code", 0)), StatusCode.UNSET)
                spans.append(
                    ReadableSpan(
                        name=raw.get("name", ""),
                        context=context,
                        parent=parent,
                        resource=resource,
                        attributes=_attributes(raw.get("attributes")),
                        events=[
                            Event(e.get("name", ""), _attributes(e.get("attributes")), int(e["timeUnixNano"]))
                            for e in raw.get("events", [])
                        ],
                        links=[
                            Link(
                                SpanContext(
                                    int(link["traceId"], 16), int(link["spanId"], 16), False, sampled
                                ),
                                _attributes(link.get("attributes")),
                            )
                            for link in raw.get("links", [])
                        ],
                        kind=kinds.get(int(raw.get("kind", 1)), SpanKind.INTERNAL),
                        status=Status(code, status.get("message") if code is StatusCode.ERROR else None),
                        start_time=int(raw.get("startTimeUnixNano", 0)),
                        end_time=int(raw.get("endTimeUnixNano", 0)),
                        instrumentation_scope=scope,
                    )
                )
    return spans


def span_count(documents: Sequence[dict[str, Any]]) -> int:
    return sum(
        len(scope.get("spans", []))
        for document in documents
        for resource in document.get("resourceSpans", [])
        for scope in resource.get("scopeSpans", [])
    )
