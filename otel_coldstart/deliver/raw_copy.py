"""The raw copy of a cold start: the frozen timeline as a JSON head and its records as columns.

It is the first durable copy (see ``delivery.py``): written synchronously at the ready moment or at
exit, before any span exists, because turning a timeline into spans takes a second or more for
20,000 imports and an exiting interpreter (3.12+) refuses the threads that could do it. Whoever
drains the spool later (a process that keeps running, the next process, ``otel-coldstart flush``)
turns it back into a ``Timeline`` and builds the spans exactly as this process would have.

Everything here must stay cheap and import nothing heavy: no OpenTelemetry SDK, no stat of module
files, no loop in Python over the records (``_columns``).

The file (version 2): one line of JSON (everything but the records), a newline, then the records'
columns as ``marshal`` data, format version 2. Every Python 3 reads and writes that version
unchanged for the plain values the columns hold (ints, strings, bools, None, lists, a dict), so a
copy written by the app's Python is read by ``flush`` under any other. Version 1 files (the
records as JSON rows, the whole file one JSON line) are still read: a spool may outlive an
upgrade. Version 1 is also what is written when a record holds a value marshal cannot store
(``_rows``).
"""

from __future__ import annotations

import marshal
import os
import sys
from itertools import compress, repeat
from operator import attrgetter, is_, is_not, not_

from otel_coldstart.deliver import json_text
from otel_coldstart.deliver.json_text import string as _string
from otel_coldstart.record import module_info, timeline
from otel_coldstart.version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:  # written at the exit of every traced process: no typing
    from typing import Any

FORMAT = "otel-coldstart-raw"
#: Written: records as marshalled columns. ``ROWS_VERSION``: records as JSON rows (read, and written
#: when the columns cannot be).
VERSION = 2
ROWS_VERSION = 1
#: The marshal format of the columns: the oldest with everything they hold, read by every Python 3.
#: Not 3 or 4: those look up every value that is referred to elsewhere (the recorder's module
#: names, interned) in a table, to write it once: 7 ms against 5.5 for 20,000 imports.
MARSHAL_VERSION = 2
#: Position of the optional RSS delta on an import record (``spans.RSS_DELTA``).
_RSS_DELTA = 8


def process_attributes() -> dict[str, Any]:
    """The ``process.*`` resource attributes of this process, computed without the SDK."""
    attrs: dict[str, Any] = {
        "process.pid": os.getpid(),
        "process.parent_pid": os.getppid(),
        "process.executable.path": sys.executable,
        "process.executable.name": os.path.basename(sys.executable),
        "process.command_args": list(getattr(sys, "orig_argv", sys.argv)),
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": ".".join(map(str, sys.implementation.version[:3])),
        "process.runtime.description": sys.version,
        "telemetry.distro.name": "otel-coldstart",
        "telemetry.distro.version": __version__,
    }
    if "AWS_LAMBDA_FUNCTION_NAME" in os.environ or "AWS_LAMBDA_RUNTIME_API" in os.environ:
        from otel_coldstart.deliver import lambda_sandbox

        attrs.update(lambda_sandbox.resource_attributes())
    owner = _owner()
    if owner is not None:
        attrs["process.owner"] = owner
    try:
        from otel_coldstart.record.process_start import process_start_ns

        attrs["process.creation.time"] = iso_utc_ms(process_start_ns())
    except Exception:
        pass
    return attrs


def _owner() -> str | None:
    """``getpass.getuser()`` without getpass (it imports termios): the same variables, then the
    user database."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(name)
        if user:
            return user
    try:
        import pwd

        return pwd.getpwuid(os.getuid())[0]
    except Exception:  # no user database entry (containers with arbitrary uids), or no pwd
        return None


def iso_utc_ms(epoch_ns: int) -> str:
    """``datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat(timespec="milliseconds")`` with
    ``Z`` for ``+00:00``, without importing datetime."""
    import time

    # fromtimestamp's own rounding of the float: its fraction to whole microseconds, half to even.
    timestamp = epoch_ns / 1e9
    seconds = int(timestamp // 1)
    micros = round((timestamp - seconds) * 1e6)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros // 1000:03d}Z"


def env_resource_attributes(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` as the SDK's env detector reads them.

    Read here, in the process whose cold start it is: the process that builds the spans later has
    its own environment (``flush`` would otherwise stamp its own service name on every trace).
    """
    env = os.environ if environ is None else environ
    attrs: dict[str, Any] = {}
    for item in (env.get("OTEL_RESOURCE_ATTRIBUTES") or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            value = value.strip()
            if "%" in value:  # urllib.parse costs ~3 ms to import (ipaddress with it)
                from urllib.parse import unquote

                value = unquote(value)
            attrs[key.strip()] = value
    service = env.get("OTEL_SERVICE_NAME")
    if service:
        attrs["service.name"] = service
    return attrs


def resource_attributes() -> dict[str, Any]:
    """This process's resource, as ``Resource.create`` would make it from the environment, but
    without the SDK and its detector threads (refused at interpreter shutdown on 3.12+)."""
    return {**env_resource_attributes(), **process_attributes()}


class Rows:
    """The records of a snapshot, already JSON text (an array of arrays, one per record).

    Written straight to text, record by record, because at exit the rows are the cost of the raw
    copy: 20,000 lists built and then walked by ``json.dumps`` took twice the CPU, and as
    long-lived garbage they pushed the interpreter into an extra full collection (0.1-0.2 s with a
    large app loaded) during its teardown. ``decode`` gives the lists back to whoever builds spans.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def decode(self) -> list[Any]:
        rows = json_text.loads_own(self.text)
        assert isinstance(rows, list)
        return rows


class Columns:
    """The records of a snapshot as marshalled columns (``_columns``); ``decode`` gives the dict."""

    __slots__ = ("blob",)

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def decode(self) -> dict[str, Any]:
        return _load_columns(self.blob)


_ModuleSpec = type(sys.__spec__)
_NoneType = type(None)
#: What each column holds, one entry per record (``ALL``) or per import record (``IMPORTS``).
ALL = ("name", "start", "end", "parent", "thread", "error")
IMPORTS = ("via_import_module", "rss_delta", "has_spec", "origin", "loader", "located", "package")


def _columns(frozen: timeline.Timeline) -> tuple[Columns, list[Any], int]:
    """The records as columns, one C loop per field (``map``, ``attrgetter``), written by
    ``marshal``: 31 ms against 40-44 for 20,000 imports written as JSON rows.

    What a module is (its kind and file path) is stored as the spec's parts that decide it
    (``module_info.classify``), classified by whoever builds the spans; specs that are not
    importlib's own ``ModuleSpec`` are classified here, one by one. Returns the columns, the other
    records' ``[attrs, kind]`` (few; JSON, in the head) and the number of imports. Raises
    ``ValueError`` when a value is one marshal cannot store: ``_rows`` then.

    The recorder keeps ``ImportRecord`` objects, one allocation per import. Keeping them as a list
    per import instead (ready-made columns, 23-25 ms here) made the interpreter's teardown after
    our exit 10 ms longer for 20,000 imports, and 0.2 s at p50 with 20 such processes exiting at
    once on 2 cores: more than the copy saved (``benchmarks/exit_profile.py``).
    """
    imports, others = frozen.imports, frozen.records
    count = len(imports)
    everything = [*imports, *others]
    # C loops: a dict comprehension over 20,000 records costs four times as much.
    index = dict(zip(map(id, everything), range(len(everything)), strict=True))
    specs = list(map(attrgetter("spec"), imports))
    files = list(map(attrgetter("file"), imports))
    odd_at: list[int] = []
    odd_facts: list[list[Any]] = []
    odd_classes = set(map(type, specs)) - {_ModuleSpec, _NoneType}
    if odd_classes:
        odd_at = [i for i, spec in enumerate(specs) if type(spec) in odd_classes]
        for i in odd_at:
            odd_facts.append(list(module_info.facts(specs[i], files[i])))
            specs[i] = None
    origins = list(map(getattr, specs, repeat("origin"), repeat(None)))
    if not set(map(type, origins)) <= {str, _NoneType}:
        origins = [str(o) if isinstance(o, str) else None for o in origins]
    loader_types = list(map(type, map(getattr, specs, repeat("loader"), repeat(None))))
    table = {kind: position for position, kind in enumerate(dict.fromkeys(loader_types))}
    loader_names = ["" if t is _NoneType else t.__name__ for t in table]
    origin_none = list(compress(range(count), map(is_, origins, repeat(None))))
    # __file__ is spec.origin itself for a module with a location: only the others are stored.
    other_file = list(map(not_, map(is_, files, origins)))
    file_values = [
        f if type(f) is str else (str(f) if isinstance(f, str) else None) for f in compress(files, other_file)
    ]
    columns = {
        "name": _joined(list(map(attrgetter("name"), everything))),
        "start": list(map(attrgetter("start"), everything)),
        "end": list(map(attrgetter("end"), everything)),
        "parent": list(map(index.get, map(id, map(attrgetter("parent"), everything)), repeat(-1))),
        "thread": list(map(attrgetter("thread"), everything)),
        "error": list(map(attrgetter("error"), everything)),
        "via_import_module": list(map(attrgetter("via_import_module"), imports)),
        "rss_delta": list(map(attrgetter("rss_delta"), imports)),
        "has_spec": list(map(is_not, specs, repeat(None))),
        "origin": _joined(_without_none(origins, origin_none)),
        "origin_none": origin_none,
        "loader": list(map(table.__getitem__, loader_types)),
        "loader_names": loader_names,
        # ModuleSpec.has_location is a property over this attribute: the same value, no call.
        "located": list(map(getattr, specs, repeat("_set_fileattr"), repeat(False))),
        "package": list(
            map(is_not, map(getattr, specs, repeat("submodule_search_locations"), repeat(None)), repeat(None))
        ),
        "file_at": list(compress(range(count), other_file)),
        "file": file_values,
        "facts_at": odd_at,
        "facts": odd_facts,
    }
    blob = marshal.dumps(columns, MARSHAL_VERSION)
    head = [[other.attrs, other.kind] for other in others]
    return Columns(blob), head, count


def _joined(strings: list[str]) -> str:
    """``strings`` as one, NUL between them: marshal writes one string of 2 MB in a fraction of
    the time it takes for 20,000 short ones (each is encoded to a new bytes object first).
    ``ValueError`` (rows, then) for a value that is not text or holds a NUL itself."""
    try:
        text = "\0".join(strings)
    except TypeError:
        raise ValueError("a name or path that is not text") from None
    if text.count("\0") != max(len(strings) - 1, 0):
        raise ValueError("a name or path holding NUL")
    return text


def _without_none(values: list[Any], none_at: list[int]) -> list[str]:
    if not none_at:
        return values
    values = list(values)
    for at in none_at:
        values[at] = ""
    return values


def _split(columns: dict[str, Any], key: str, like: str) -> list[str]:
    """``_joined`` undone; as many strings as column ``like`` has values, or ``ValueError``."""
    text, count = columns.get(key), len(columns.get(like) or ())
    if not isinstance(text, str):
        raise ValueError(f"damaged records ({key})")
    strings = text.split("\0") if count else []
    if len(strings) != count:
        raise ValueError(f"damaged records ({key}: {len(strings)} for {count})")
    return strings


def _load_columns(blob: bytes) -> dict[str, Any]:
    """The columns again; ``ValueError`` if ``blob`` is not a whole, consistent set of them."""
    try:
        columns = marshal.loads(blob)
    except (EOFError, ValueError, TypeError) as exc:
        raise ValueError(f"damaged records ({exc})") from None
    if not isinstance(columns, dict):
        raise ValueError("damaged records (not a set of columns)")
    columns["name"] = _split(columns, "name", "start")
    origins: list[Any] = _split(columns, "origin", "via_import_module")
    try:
        for at in columns["origin_none"]:
            origins[at] = None
    except (KeyError, IndexError, TypeError):
        raise ValueError("damaged records (origin_none)") from None
    columns["origin"] = origins
    lengths = {len(columns.get(key) or ()) for key in ALL}
    import_lengths = {len(columns.get(key) or ()) for key in IMPORTS}
    if len(lengths) != 1 or len(import_lengths) != 1 or not isinstance(columns.get("loader_names"), list):
        raise ValueError("damaged records (columns of different lengths)")
    return columns


def _value(value: Any) -> str:
    # default=str: a record attribute we cannot store as JSON is kept as its text, never fatal.
    return json_text.dumps(value, default=str)


def _number(value: Any) -> str:
    if type(value) is int:
        return str(value)
    return "null" if value is None else _value(value)


def _rows(frozen: timeline.Timeline) -> Rows:
    """``[name, start, end, parent index, thread, ...]`` per record: for an import then
    ``via_import_module, error, kind, path, rss_delta``, for any other record ``attrs, error, kind``
    (``to_timeline`` reads them back).

    The import loop is the exit's largest cost for a large app (20,000 rows), so the common case
    (ints where ints belong, no error, no memory delta) is written inline, without a call per
    field: about a third less CPU than through ``_number`` and ``module_info.facts`` each time."""
    string, null = _string, "null"
    imports, others = frozen.imports, frozen.records
    count = len(imports)
    # C loops: a dict comprehension over 20,000 records costs four times as much.
    index = dict(zip(map(id, imports), range(count), strict=True))
    index.update(zip(map(id, others), range(count, count + len(others)), strict=True))
    facts, facts_type = module_info.facts, module_info.ModuleFacts
    parts: list[str] = []
    append = parts.append
    for record in imports:
        parent = record.parent
        parent_index = -1 if parent is None else index.get(id(parent), -1)
        end = record.end
        end_text = str(end) if type(end) is int else _number(end)
        error = null if record.error is None else _value(list(record.error))
        spec = record.spec
        kind: str | None
        path: str | None
        if type(spec) is facts_type:
            kind, path = spec.kind, spec.path
        elif spec is not None or record.file is not None:
            kind, path = facts(spec, record.file)
        else:
            kind = path = None
        rss = record.rss_delta
        append(
            f"[{string(record.name)},{record.start},{end_text},{parent_index},{record.thread},"
            f"{'true' if record.via_import_module else 'false'},{error},"
            f"{null if kind is None else string(kind)},{null if path is None else string(path)},"
            f"{null if rss is None else _number(rss)}]"
        )
    for other in others:
        parent = other.parent
        parent_index = -1 if parent is None else index.get(id(parent), -1)
        error = null if other.error is None else _value(list(other.error))
        append(
            f"[{string(other.name)},{other.start},{_number(other.end)},{parent_index},{other.thread},"
            f"{_value(other.attrs)},{error},{string(other.kind)}]"
        )
    return Rows("[" + ",".join(parts) + "]")


def snapshot(
    frozen: timeline.Timeline,
    *,
    process_start_ns: int,
    resource: dict[str, Any],
    trace_file: str | None,
    min_import_ns: int = 0,
    extra_root_attributes: dict[str, Any] | None = None,
    root_ids: tuple[int, int] | None = None,
    parent_ids: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The frozen timeline and what span building needs besides it, as plain JSON values (the
    records as ``Columns``, or as ``Rows`` where marshal cannot store one of their values)."""
    records: Columns | Rows
    others: list[Any] | None
    try:
        records, others, count = _columns(frozen)
    except ValueError:  # a value marshal cannot store (a str subclass for a name, say)
        records, others, count = _rows(frozen), None, len(frozen.imports)
    return {
        "format": FORMAT,
        "version": VERSION if others is not None else ROWS_VERSION,
        "origin": frozen.origin,
        "wall_anchor_ns": frozen.wall_anchor_ns,
        "mono_anchor_ns": frozen.mono_anchor_ns,
        "hook_installed_ns": frozen.hook_installed_ns,
        "ready_ns": frozen.ready_ns,
        "ready_trigger": frozen.ready_trigger,
        "prehook_modules": list(frozen.prehook_modules),
        "imports": count,
        "records": records,
        # The non-import records' attributes and kinds (columns: ``others`` holds them).
        "others": others,
        "counters": dict(frozen.counters),
        "root_attributes": dict(getattr(frozen, "root_attributes", {})),
        "marks": dict(frozen.marks),
        "memory_snapshots": [
            [s.label, s.mono_ns, s.rss, s.vms, s.peak_rss] for s in list(frozen.memory_snapshots)
        ],
        # A list of pairs: JSON object keys are strings, and the first entry is the main thread.
        "thread_names": [[tid, name] for tid, name in list(frozen.thread_names.items())],
        "process_start_ns": process_start_ns,
        "resource": resource,
        "trace_file": trace_file,
        "min_import_ns": min_import_ns,
        "extra_root_attributes": extra_root_attributes or {},
        # Trace and span ids are drawn from this seed, so that whoever builds the spans (this
        # process, the next, flush) makes the same ids: the trace file and the collector agree, and
        # a chunk sent twice in the at-least-once corner carries the ids it had the first time.
        "id_seed": int.from_bytes(os.urandom(8), "big"),
        # The root's ids derived from the process's identity, and its parent process's, for links.
        "root_ids": list(root_ids) if root_ids else None,
        "parent_ids": list(parent_ids) if parent_ids else None,
    }


def encode(raw: dict[str, Any]) -> bytes:
    rows = raw["records"]
    if isinstance(rows, dict):  # columns read back (a copy rewritten without its trace file)
        origins = rows["origin"]
        packed = dict(rows, name=_joined(rows["name"]))
        packed["origin_none"] = [at for at, origin in enumerate(origins) if origin is None]
        packed["origin"] = _joined(_without_none(origins, packed["origin_none"]))
        rows = Columns(marshal.dumps(packed, MARSHAL_VERSION))
    if isinstance(rows, Columns):
        head = _value({key: value for key, value in raw.items() if key != "records"})
        return b"".join((head.encode(), b"\n", rows.blob))
    if not isinstance(rows, Rows):
        return (_value(raw) + "\n").encode("utf-8")
    # Everything but the rows through json, the rows' text spliced in: "records" goes last (the
    # order of an object's keys means nothing to the reader).
    head = _value({key: value for key, value in raw.items() if key != "records"})
    return f'{head[:-1]},"records":{rows.text}}}\n'.encode()


def decode(payload: bytes) -> dict[str, Any]:
    """A raw copy read back; ``ValueError`` if ``payload`` is not one (or not all of one)."""
    import json  # reading a spooled copy back: flush and the drain, never the exit

    head, _, blob = payload.partition(b"\n")
    try:
        raw = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError("not an otel-coldstart raw copy")
    version = raw.get("version")
    if version == VERSION:
        if not isinstance(raw.get("others"), list):
            raise ValueError("damaged raw copy (no other records)")
        raw["records"] = columns = _load_columns(blob)
        imports = raw.get("imports")
        if type(imports) is not int or len(columns["name"]) != imports + len(raw["others"]):
            raise ValueError("damaged raw copy (records and their count differ)")
    elif version == ROWS_VERSION:
        if blob.strip() or not isinstance(raw.get("records"), list):
            raise ValueError("damaged raw copy (records)")
    else:
        raise ValueError(
            f"raw copy version {version!r}, this otel-coldstart reads {ROWS_VERSION} and {VERSION}"
        )
    return raw


def to_timeline(raw: dict[str, Any]) -> timeline.Timeline:
    """The frozen timeline again, with ``ModuleFacts`` where the module objects were."""
    from otel_coldstart.record.memory import MemorySnapshot

    tl = timeline.Timeline.__new__(timeline.Timeline)
    tl.origin = raw["origin"]
    tl.wall_anchor_ns = int(raw["wall_anchor_ns"])
    tl.mono_anchor_ns = int(raw["mono_anchor_ns"])
    tl.hook_installed_ns = int(raw["hook_installed_ns"])
    tl.ready_ns = None if raw.get("ready_ns") is None else int(raw["ready_ns"])
    tl.ready_trigger = raw.get("ready_trigger")
    tl.prehook_modules = tuple(raw.get("prehook_modules", ()))
    tl.counters = dict(raw.get("counters", {}))
    tl.root_attributes = dict(raw.get("root_attributes") or {})
    tl.marks = dict(raw.get("marks", {}))
    tl.memory_snapshots = [MemorySnapshot(*row) for row in raw.get("memory_snapshots", [])]
    tl.thread_names = {int(tid): name for tid, name in raw.get("thread_names", [])}
    n_imports = int(raw["imports"])
    rows = raw["records"]
    if isinstance(rows, (Rows, Columns)):  # this process's own snapshot, not read back from the spool
        rows = rows.decode()
    if isinstance(rows, dict):
        records, parents = _records_from_columns(rows, raw.get("others") or [], n_imports)
    else:
        records, parents = _records_from_rows(rows, n_imports)
    for record, parent in zip(records, parents, strict=True):
        if parent >= 0:
            record.parent = records[parent]
    tl.imports = records[:n_imports]
    tl.records = records[n_imports:]
    return tl


def _records_from_columns(
    columns: dict[str, Any], others: list[Any], n_imports: int
) -> tuple[list[Any], list[int]]:
    facts = dict(zip(columns["facts_at"], columns["facts"], strict=True))
    files = dict(zip(columns["file_at"], columns["file"], strict=True))
    loader_names = columns["loader_names"]
    classify, module_facts = module_info.classify, module_info.ModuleFacts
    records: list[Any] = []
    names, starts, ends = columns["name"], columns["start"], columns["end"]
    threads, errors = columns["thread"], columns["error"]
    for i in range(n_imports):
        record: Any = timeline.ImportRecord(
            names[i], starts[i], None, threads[i], bool(columns["via_import_module"][i])
        )
        origin = columns["origin"][i]
        kind: str | None
        if i in facts:
            kind, path = facts[i]
        elif not columns["has_spec"][i] and files.get(i, origin) is None:
            kind = path = None  # nothing known of it: no facts, as ``_rows`` writes it
        else:
            kind, path = classify(
                columns["has_spec"][i],
                origin,
                loader_names[columns["loader"][i]],
                columns["located"][i],
                columns["package"][i],
                files.get(i, origin),
            )
        if kind is not None:
            record.spec = module_facts(kind, path if isinstance(path, str) else None)
        record.rss_delta = columns["rss_delta"][i]
        records.append(record)
    for i, (attrs, kind) in enumerate(others, n_imports):
        records.append(timeline.Record(kind, names[i], starts[i], None, threads[i], dict(attrs)))
    for record, end, error in zip(records, ends, errors, strict=True):
        record.end = end
        record.error = tuple(error) if error is not None else None
    return records, columns["parent"]


def _records_from_rows(rows: list[Any], n_imports: int) -> tuple[list[Any], list[int]]:
    records: list[Any] = []
    for position, row in enumerate(rows):
        name, start, end, _, thread = row[:5]
        if position < n_imports:
            record: Any = timeline.ImportRecord(name, start, None, thread, bool(row[5]))
            record.spec = module_info.ModuleFacts(row[7], row[8]) if row[7] is not None else None
            record.rss_delta = row[9]
        else:
            record = timeline.Record(row[7], name, start, None, thread, dict(row[5]))
        record.end = end
        record.error = tuple(row[6]) if row[6] is not None else None
        records.append(record)
    return records, [row[3] for row in rows]
