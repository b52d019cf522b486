"""Trace readers: every format we accept becomes the same ``Trace`` model.

Formats, detected from the content (never from the file name):

- **OTLP JSON**: one ``ExportTraceServiceRequest`` document (``{"resourceSpans": [...]}``), or one
  per line (our trace-file sink, the collector's file exporter, the spool); gzip accepted.
- **Jaeger v3 API**: ``{"result": {"resourceSpans": [...]}}`` (OTLP JSON inside; enums as
  integers, default-valued fields omitted).
- **Jaeger classic JSON**: ``{"data": [trace, ...]}`` from ``/api/traces`` or the UI's "Download
  Results", or one bare ``{"traceID", "spans", "processes"}`` trace (the UI's "Download JSON").
  Times are microseconds; ``CHILD_OF`` references are preferred to ``FOLLOWS_FROM``.

Input is streamed (``stream``): spans become records as they are parsed, documents are never held
whole, traces are grouped as documents complete. Numbers are checked on the way in (``numbers``).

Documented repairs: a last line with no newline that does not parse (a writer interrupted
mid-line) is dropped with a warning; anything else malformed is a ``TraceError``.
"""

from __future__ import annotations

import base64
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from otel_coldstart import conventions as cv
from otel_coldstart.validate import inflate, numbers, stream
from otel_coldstart.validate.model import ROOT_NAME, InconsistentTrace, Span, SpanEvent, Trace, TraceError
from otel_coldstart.validate.tree import link

OTLP_LINES = "OTLP JSON lines"
OTLP_DOCUMENT = "OTLP JSON"
JAEGER_V3 = "Jaeger v3 API JSON"
JAEGER_CLASSIC = "Jaeger classic JSON"
JAEGER_UI_TRACE = "Jaeger UI trace JSON"


# --- values -----------------------------------------------------------------------------------


def _obj(value: Any, what: str) -> dict[str, Any]:
    """A JSON object or nothing; anything else is malformed (not silently skipped)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TraceError(f"{what} is {type(value).__name__}, expected an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TraceError(f"{what} is {type(value).__name__}, expected a list")
    return value


def any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` object as a plain Python value, checked (why the recorder's spool has
    its own decoder: ``otel_coldstart/deliver/otlp_json.py``, "The other direction")."""
    if not isinstance(value, dict) or not value:
        return None
    if "stringValue" in value:
        return str(value["stringValue"])
    if "intValue" in value:
        return numbers.integer(value["intValue"], "intValue")
    if "doubleValue" in value:
        return numbers.finite(value["doubleValue"], "doubleValue")
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in _list(_obj(value["arrayValue"], "arrayValue").get("values"), "values")]
    if "kvlistValue" in value:
        return attributes(_obj(value["kvlistValue"], "kvlistValue").get("values"))
    if "bytesValue" in value:
        return str(value["bytesValue"])
    return None


def attributes(items: Any) -> dict[str, Any]:
    if not items:
        return {}
    if type(items) is not list:
        raise TraceError("attributes is not a list")
    out: dict[str, Any] = {}
    for item in items:
        if type(item) is not dict or "key" not in item:
            raise TraceError("attribute without a key")
        key = item["key"]
        # Interned: a million spans share a few dozen keys instead of holding a copy each.
        key = _intern(key if type(key) is str else str(key))
        raw = item.get("value")
        if type(raw) is dict:
            # The common cases first: a string, or an int64 as a string of digits.
            value = raw.get("stringValue")
            if type(value) is str:
                # Short values repeat across spans (kinds, phases, tiers): one object each.
                out[key] = _intern(value) if len(value) <= 16 else value
                continue
            value = raw.get("intValue")
            if type(value) is str and len(value) <= 18 and value.isascii() and value.isdigit():
                out[key] = int(value)
                continue
        try:
            value = out[key] = any_value(raw)
        except TraceError as exc:
            raise TraceError(f"attribute {key!r}: {exc}") from None
        if key in _NON_NEGATIVE and isinstance(value, (int, float)) and value < 0:
            raise TraceError(f"attribute {key!r} is negative ({value})")
    return out


_intern = sys.intern
_NON_NEGATIVE = numbers.NON_NEGATIVE
_HEX_DIGITS = "0123456789abcdef"


def _hex_id(value: Any, length: int, what: str) -> str:
    """OTLP JSON ids are hex; the generic protobuf mapping (and some tools) write base64."""
    if type(value) is str and len(value) == length and not value.strip(_HEX_DIGITS):
        return value  # the common case: already lowercase hex
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise TraceError(f"{what} is not a string")
    text = value.strip().lower()
    if len(text) == length and not text.strip(_HEX_DIGITS):
        return text
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        raw = b""
    if len(raw) * 2 == length:
        return raw.hex()
    raise TraceError(f"{what} {value[:40]!r} is neither {length} hex digits nor base64")


# --- OTLP JSON ----------------------------------------------------------------------------------


def otlp_spans(document: Any, source: str) -> list[Span]:
    if not isinstance(document, dict):
        raise TraceError(f"{source}: expected a JSON object with resourceSpans")
    spans: list[Span] = []
    for resource_spans in _list(document.get("resourceSpans"), "resourceSpans"):
        if not isinstance(resource_spans, dict):
            raise TraceError(f"{source}: resourceSpans entry is not an object")
        resource = attributes(_obj(resource_spans.get("resource"), "resource").get("attributes"))
        # "instrumentationLibrarySpans" is the pre-1.0 name some old exporters still write.
        scopes = _list(
            resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans"),
            "scopeSpans",
        )
        for scope_spans in scopes:
            if not isinstance(scope_spans, dict):
                raise TraceError(f"{source}: scopeSpans entry is not an object")
            for raw in _list(scope_spans.get("spans"), "spans"):
                spans.append(_otlp_span(raw, resource, source))
    return spans


def _span_label(raw: dict[str, Any], name_key: str, id_key: str) -> str:
    name = raw.get(name_key, "?")
    name = name if isinstance(name, str) and len(name) <= 80 else f"{str(name)[:60]}..."
    span_id = raw.get(id_key)
    span_id = span_id if isinstance(span_id, str) and len(span_id) <= 40 else "?"
    return f"span {name!r} ({id_key} {span_id})"


_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _otlp_span(raw: Any, resource: dict[str, Any], source: str) -> Span:
    """One OTLP span object -> a ``Span`` record. The hot loop of the reader: the common shapes
    (lowercase hex ids, digit-string times, string and digit-string int attributes) take the
    shortest path; everything else goes through the checked helpers."""
    if type(raw) is not dict:
        raise TraceError(f"{source}: span is not an object")
    try:
        span_id = raw.get("spanId")
        if not (type(span_id) is str and len(span_id) == 16 and not span_id.strip(_HEX_DIGITS)):
            span_id = _hex_id(span_id, 16, "spanId")
            if not span_id:
                raise TraceError("no spanId")
        parent_id = raw.get("parentSpanId")
        if parent_id and not (
            type(parent_id) is str and len(parent_id) == 16 and not parent_id.strip(_HEX_DIGITS)
        ):
            parent_id = _hex_id(parent_id, 16, "parentSpanId")
        start_ns = raw.get("startTimeUnixNano")
        if not (type(start_ns) is str and len(start_ns) <= 18 and start_ns.isascii() and start_ns.isdigit()):
            start_ns = _time_ns(start_ns, "startTimeUnixNano")
        end_ns = raw.get("endTimeUnixNano")
        if not (type(end_ns) is str and len(end_ns) <= 18 and end_ns.isascii() and end_ns.isdigit()):
            end_ns = _time_ns(end_ns, "endTimeUnixNano")
        start_ns, end_ns = int(start_ns), int(end_ns)
        if end_ns < start_ns:
            numbers.check_interval(start_ns, end_ns, "it")
        status = raw.get("status")
        if status:
            status = _obj(status, "status")
            code = status.get("code", 0)
            if isinstance(code, str):  # the generic protobuf mapping writes enum names
                code = _STATUS_NAMES.get(code, 0)
            code = numbers.integer(code, "status.code")
            message = str(status.get("message", ""))
        else:
            code, message = 0, ""
        name = raw.get("name", "")
        events = raw.get("events")
        return Span(
            _trace_id(raw.get("traceId")),
            span_id,
            parent_id or None,
            name if type(name) is str else str(name),
            start_ns,
            end_ns,
            attributes(raw.get("attributes")),
            _events(events) if events else (),
            code,
            message,
            resource,
        )
    except TraceError as exc:
        # Name the span in the one line the user sees: which span and which field is wrong.
        raise TraceError(f"{source}: {_span_label(raw, 'name', 'spanId')}: {exc}") from None


def _events(events: Any) -> list[SpanEvent]:
    return [
        SpanEvent(
            name=str(event.get("name", "")),
            time_ns=numbers.time_ns(event.get("timeUnixNano"), "event timeUnixNano"),
            attributes=attributes(event.get("attributes")),
        )
        for event in _list(events, "events")
        if isinstance(event, dict)
    ]


_time_ns = numbers.time_ns
_trace_ids: dict[str, str] = {}


def _trace_id(value: Any) -> str:
    """The trace id, one string object per trace (every span of a trace shares it)."""
    shared = _trace_ids.get(value) if type(value) is str else None
    if shared is not None:
        return shared
    trace_id = _hex_id(value, 32, "traceId")
    if len(_trace_ids) > 4096:
        _trace_ids.clear()
    if type(value) is str:
        _trace_ids[value] = trace_id
    return trace_id


# --- Jaeger classic JSON ------------------------------------------------------------------------


def _jaeger_tags(tags: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag in _list(tags, "tags"):
        if not isinstance(tag, dict) or "key" not in tag:
            raise TraceError("Jaeger tag without a key")
        value = tag.get("value")
        key = str(tag["key"])
        kind = str(tag.get("type", "")).lower()
        if value is not None:
            what = f"Jaeger tag {key!r}"
            # int64 tags beyond 2**53 arrive as strings so that JavaScript keeps them exact.
            if kind == "int64":
                value = numbers.integer(value, what)
            elif kind == "float64":
                value = numbers.finite(value, what)
            elif kind == "bool":
                value = value in (True, "true", "True", 1)
            elif isinstance(value, float) and not math.isfinite(value):
                raise TraceError(f"{what} is {value}, expected a finite number")
            if key in numbers.NON_NEGATIVE and isinstance(value, (int, float)) and value < 0:
                raise TraceError(f"{what} is negative ({value})")
        out[key] = value
    return out


def jaeger_spans(trace: Any, source: str) -> list[Span]:
    if not isinstance(trace, dict) or not isinstance(trace.get("spans"), list):
        raise TraceError(f"{source}: a Jaeger trace needs a 'spans' list")
    processes = _obj(trace.get("processes"), "processes")
    if not isinstance(processes, dict):
        raise TraceError(f"{source}: 'processes' is not an object")
    resources: dict[str, dict[str, Any]] = {}
    for process_id, process in processes.items():
        if not isinstance(process, dict):
            raise TraceError(f"{source}: process {process_id!r} is not an object")
        resources[process_id] = {
            "service.name": process.get("serviceName", ""),
            **_jaeger_tags(process.get("tags")),
        }
    spans = []
    for raw in trace["spans"]:
        if not isinstance(raw, dict):
            raise TraceError(f"{source}: span is not an object")
        try:
            spans.append(_jaeger_span(raw, trace, resources))
        except TraceError as exc:
            raise TraceError(f"{source}: {_span_label(raw, 'operationName', 'spanID')}: {exc}") from None
    return spans


def _jaeger_span(raw: dict[str, Any], trace: dict[str, Any], resources: dict[str, dict[str, Any]]) -> Span:
    trace_id = _hex_id(raw.get("traceID") or trace.get("traceID"), 32, "traceID")
    parent_id = None
    references = [r for r in _list(raw.get("references"), "references") if isinstance(r, dict)]
    # CHILD_OF is the tree edge; FOLLOWS_FROM only if nothing better. A reference into another
    # trace (links across traces) is not a parent here.
    for wanted in ("CHILD_OF", "FOLLOWS_FROM"):
        for ref in references:
            if ref.get("refType") == wanted and _hex_id(ref.get("traceID"), 32, "traceID") == trace_id:
                parent_id = _hex_id(ref.get("spanID"), 16, "spanID")
                break
        if parent_id:
            break
    tags = _jaeger_tags(raw.get("tags"))
    start_us = numbers.integer(raw.get("startTime"), "startTime", 0, numbers.TIME_MAX_NS // 2000)
    duration_us = numbers.integer(raw.get("duration"), "duration", 0, numbers.TIME_MAX_NS // 2000)
    status_code = 0
    code_tag = str(tags.get("otel.status_code", "")).upper()
    if tags.get("error") is True or code_tag == "ERROR":
        status_code = 2
    elif code_tag == "OK":
        status_code = 1
    events = []
    for log in _list(raw.get("logs"), "logs"):
        if not isinstance(log, dict):
            continue
        fields = _jaeger_tags(log.get("fields"))
        events.append(
            SpanEvent(
                name=str(fields.pop("event", "log")),
                time_ns=numbers.integer(log.get("timestamp"), "log timestamp", 0, numbers.TIME_MAX_NS // 1000)
                * 1000,
                attributes=fields,
            )
        )
    span_id = _hex_id(raw.get("spanID"), 16, "spanID")
    if not span_id:
        raise TraceError("no spanID")
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        name=str(raw.get("operationName", "")),
        start_ns=start_us * 1000,
        end_ns=(start_us + duration_us) * 1000,
        attributes=tags,
        events=events,
        status_code=status_code,
        status_message=str(tags.get("otel.status_description", "")),
        resource=resources.get(str(raw.get("processID", "")), {}),
    )


# --- documents ----------------------------------------------------------------------------------


def document_spans(document: Any, source: str) -> tuple[str, list[Span]]:
    """One parsed JSON document -> (format name, spans). Raises ``TraceError`` on unknown shapes."""
    try:
        return _document_spans(document, source)
    except TraceError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError, OverflowError, RecursionError) as exc:
        # The checks above cover the shapes we know; a shape nobody foresaw is still bad input,
        # reported on one line rather than as a traceback.
        raise TraceError(f"{source}: unexpected trace structure ({type(exc).__name__}: {exc})") from None


def _document_spans(document: Any, source: str) -> tuple[str, list[Span]]:
    if isinstance(document, dict):
        if "resourceSpans" in document:
            return OTLP_DOCUMENT, otlp_spans(document, source)
        if isinstance(document.get("result"), dict) and "resourceSpans" in document["result"]:
            return JAEGER_V3, otlp_spans(document["result"], source)
        if "data" in document and isinstance(document["data"], list):
            spans = []
            for trace in document["data"]:
                spans.extend(jaeger_spans(trace, source))
            return JAEGER_CLASSIC, spans
        if "spans" in document and ("traceID" in document or "processes" in document):
            return JAEGER_UI_TRACE, jaeger_spans(document, source)
        if isinstance(document.get("error"), dict):
            error = document["error"]
            raise TraceError(f"{source}: Jaeger answered an error: {error.get('message') or error}")
        if isinstance(document.get("errors"), list) and document["errors"]:
            raise TraceError(f"{source}: Jaeger answered errors: {document['errors'][0]}")
    if isinstance(document, list) and all(isinstance(d, dict) and "spans" in d for d in document):
        spans = []
        for trace in document:
            spans.extend(jaeger_spans(trace, source))
        return JAEGER_CLASSIC, spans
    raise TraceError(f"{source}: not a trace document (expected OTLP JSON or Jaeger JSON)")


_STREAM_FORMATS = {"otlp": OTLP_DOCUMENT, "v3": JAEGER_V3, "classic": JAEGER_CLASSIC}


def _resource(value: Any) -> dict[str, Any]:
    return attributes(_obj(value, "resource").get("attributes"))


def _jaeger_trace(trace: Any, source: str) -> list[Span]:
    return jaeger_spans(trace, source)


def _only(wanted: frozenset[str] | None) -> tuple[stream.OtlpSpan, Callable[[Any, str], list[Span]]]:
    """The span converters, skipping every trace but ``wanted`` (a re-read for one trace: the
    others' spans are scanned by the C parser but never become records)."""
    if wanted is None:
        return _otlp_span, _jaeger_trace

    def otlp_span(raw: Any, resource: dict[str, Any], source: str) -> Span | None:
        try:
            trace_id = _trace_id(raw.get("traceId")) if type(raw) is dict else None
        except TraceError:
            trace_id = None
        return _otlp_span(raw, resource, source) if trace_id in wanted else None

    def jaeger_trace(trace: Any, source: str) -> list[Span]:
        spans = jaeger_spans(trace, source) if _jaeger_trace_wanted(trace, wanted) else []
        return [span for span in spans if span.trace_id in wanted]

    return otlp_span, jaeger_trace


def _jaeger_trace_wanted(trace: Any, wanted: frozenset[str]) -> bool:
    """False only when the trace's own id says it is another trace (spans may name theirs)."""
    if not isinstance(trace, dict) or not trace.get("traceID"):
        return True
    try:
        return _hex_id(trace["traceID"], 32, "traceID") in wanted
    except TraceError:
        return True


#: Spans held in traces not yet complete, past which the least recently extended one is taken as
#: complete (``TraceFeed``): what a fleet run holds at most, besides the trace being read.
HOLD_SPANS = 20_000


def _is_root(span: Span) -> bool:
    """Could be a cold start's root (tree.link's test)."""
    return (span.name == ROOT_NAME and not span.parent_id) or span.attributes.get(cv.KIND) == cv.KIND_ROOT


class TraceFeed:
    """The cold-start traces of one input, linked, each handed over once it is complete.

    A trace is complete at the end of the input, or earlier when the spans held in incomplete
    traces pass ``hold_spans``: then the trace extended least recently (not by the last document)
    is taken as complete (a trace file holds each cold start on one line, or on a few consecutive
    ones). A trace that gets
    spans after it was handed over (or dropped for lacking a root) is named in ``late``: its
    figures are wrong, and the caller must read it again whole (``read_file(..., only=...)``).
    With no ``hold_spans`` every trace is held to the end: ``read_chunks`` reads that way.

    After the iteration: ``fmt``, ``warnings`` (for the whole input), ``span_count``, ``late``,
    and ``order`` (trace id -> rank of its first span in the input, for a stable oldest-first sort).
    """

    def __init__(
        self,
        chunks: Iterable[bytes],
        source: str,
        hold_spans: int | None = HOLD_SPANS,
        only: frozenset[str] | None = None,
    ) -> None:
        self._chunks = chunks
        self.source = source
        self.hold_spans = hold_spans
        self.only = only
        self.fmt = ""
        self.warnings: list[str] = []
        self.span_count = 0
        self.late: set[str] = set()
        self.order: dict[str, int] = {}

    def __iter__(self) -> Iterator[Trace]:
        reader = stream.Reader(self._chunks, self.source)
        otlp_span, jaeger_trace = _only(self.only)
        # Insertion order is recency: a trace extended by a document moves to the end.
        pending: dict[str, list[Span]] = {}
        held = 0
        #: trace id -> whether it was a cold start, for the traces taken as complete
        finished: dict[str, bool] = {}
        formats: set[str] = set()
        documents = 0
        resources: dict[tuple, dict[str, Any]] = {}
        try:
            for document in stream.documents(reader, otlp_span, _resource, document_spans, jaeger_trace):
                documents += 1
                formats.add(_STREAM_FORMATS.get(document.fmt, document.fmt))
                # The traces this document extended, in order (a dict: an ordered set).
                touched: dict[str, None] = {}
                last = ""
                group: list[Span] = []
                for span in document.spans:
                    trace_id = span.trace_id
                    if trace_id != last:
                        found = pending.get(trace_id)
                        if found is None:
                            if trace_id in finished:
                                # Only a cold start needs reading again: one summarised, or
                                # whose root comes late (other traffic's spans are ignored).
                                if finished[trace_id] or _is_root(span):
                                    self.late.add(trace_id)
                                last = ""
                                continue
                            found = pending[trace_id] = []
                            self.order.setdefault(trace_id, len(self.order))
                        touched[trace_id] = None
                        last, group = trace_id, found
                    group.append(span)
                    held += 1
                    # One resource dict per distinct resource, not one per line of the file.
                    if span.resource:
                        shared = _shared_resource(resources, span.resource)
                        if shared is not span.resource:
                            span.resource = shared
                self.span_count += len(document.spans)
                for trace_id in touched:
                    pending[trace_id] = pending.pop(trace_id)
                while self.hold_spans is not None and held > self.hold_spans:
                    # Never one this document extended: a trace written in many batches of
                    # lines is still arriving (and one larger than the budget is held whole).
                    trace_id = next((t for t in pending if t not in touched), "")
                    if not trace_id:
                        break
                    members = pending.pop(trace_id)
                    held -= len(members)
                    trace = self._link(trace_id, members)
                    finished[trace_id] = trace is not None
                    if trace is not None:
                        yield trace
        except stream.MalformedJSON:
            # A writer killed mid-line leaves a last line with no newline: drop it, say so.
            at_end = reader.eof and not reader.buf.endswith("\n")
            on_last_line = reader.line_at(len(reader.buf)) == reader.doc_line
            if not (at_end and on_last_line and self.span_count):
                raise
            self.warnings.append(f"{self.source}: last line {reader.doc_line} is truncated; dropped")
        except RecursionError:
            raise TraceError(f"{self.source}: line {reader.doc_line}: JSON nested too deeply") from None
        if not documents:
            raise TraceError(f"{self.source} is empty")
        if documents == 1 and not self.warnings:
            self.fmt = formats.pop()
        else:
            self.fmt = OTLP_LINES if formats <= {OTLP_DOCUMENT} else " + ".join(sorted(formats)) + " (lines)"
        for trace_id in sorted(pending, key=self.order.__getitem__):
            trace = self._link(trace_id, pending.pop(trace_id))
            if trace is not None:
                yield trace

    def _link(self, trace_id: str, members: list[Span]) -> Trace | None:
        """The linked cold-start trace, or None for another kind of trace (live spans after ready,
        other services); an inconsistent cold start is an error."""
        trace = Trace(trace_id=trace_id, spans=members, source=self.source)
        try:
            link(trace)
        except InconsistentTrace:
            raise
        except TraceError:
            return None
        return trace


def read_spans(chunks: Iterable[bytes], source: str) -> tuple[str, dict[str, list[Span]], list[str]]:
    """Stream any supported input -> (format name, spans grouped by trace id, warnings).

    Documents are parsed span by span and never held whole (``stream``); each document's spans
    join their trace's group once the document is complete.
    """
    reader = stream.Reader(chunks, source)
    groups: dict[str, list[Span]] = {}
    warnings: list[str] = []
    formats: set[str] = set()
    count = documents = 0
    resources: dict[tuple, dict[str, Any]] = {}
    try:
        for document in stream.documents(reader, _otlp_span, _resource, document_spans, _jaeger_trace):
            documents += 1
            formats.add(_STREAM_FORMATS.get(document.fmt, document.fmt))
            for span in document.spans:
                group = groups.get(span.trace_id)
                if group is None:
                    group = groups[span.trace_id] = []
                group.append(span)
                # One resource dict per distinct resource, not one per line of the file.
                if span.resource:
                    shared = _shared_resource(resources, span.resource)
                    if shared is not span.resource:
                        span.resource = shared
            count += len(document.spans)
    except stream.MalformedJSON:
        # A writer killed mid-line leaves a last line with no newline: drop it, say so.
        at_end = reader.eof and not reader.buf.endswith("\n")
        on_last_line = reader.line_at(len(reader.buf)) == reader.doc_line
        if not (at_end and on_last_line and count):
            raise
        warnings.append(f"{source}: last line {reader.doc_line} is truncated; dropped")
    except RecursionError:
        raise TraceError(f"{source}: line {reader.doc_line}: JSON nested too deeply") from None
    if not documents:
        raise TraceError(f"{source} is empty")
    if documents == 1 and not warnings:
        fmt = formats.pop()
    else:
        fmt = OTLP_LINES if formats <= {OTLP_DOCUMENT} else " + ".join(sorted(formats)) + " (lines)"
    return fmt, groups, warnings


def _shared_resource(cache: dict[tuple, dict[str, Any]], resource: dict[str, Any]) -> dict[str, Any]:
    try:
        key = tuple(resource.items())
        return cache.setdefault(key, resource)
    except TypeError:  # an unhashable (list) value: keep it as it is
        return resource


def traces_from_spans(spans: Iterable[Span], source: str, warnings: list[str] | None = None) -> list[Trace]:
    """Group, link and keep the cold-start traces (those with a ``coldstart`` root)."""
    groups: dict[str, list[Span]] = {}
    for span in spans:
        groups.setdefault(span.trace_id, []).append(span)
    return traces_from_groups(groups, source, warnings)


def traces_from_groups(
    groups: dict[str, list[Span]], source: str, warnings: list[str] | None = None
) -> list[Trace]:
    """Link each trace id's spans; keep the cold-start traces (a ``coldstart`` root), oldest first."""
    traces = []
    for trace_id, members in groups.items():
        trace = Trace(trace_id=trace_id, spans=members, source=source)
        try:
            link(trace)
        except InconsistentTrace:
            raise
        except TraceError:
            continue  # another trace in the same file (live spans after ready, other services)
        trace.warnings[:0] = list(warnings or [])
        traces.append(trace)
    traces.sort(key=lambda t: t.root.start_ns if t.root else 0)
    return traces


def read_file(path: str) -> tuple[str, list[Trace]]:
    """Read a trace file of any supported format -> (format name, cold-start traces, oldest first).

    Raises ``TraceError`` (one line, for humans) when the file is missing, malformed, or holds no
    cold-start trace.
    """
    return read_chunks(inflate.file_chunks(path), path)


def read_chunks(chunks: Iterable[bytes], source: str) -> tuple[str, list[Trace]]:
    """``read_file`` over bytes arriving in chunks (a file, a gzip stream, an HTTP body)."""
    fmt, groups, warnings = read_spans(chunks, source)
    count = sum(len(group) for group in groups.values())
    if not count:
        raise TraceError(f"{source}: no spans found ({fmt})")
    traces = traces_from_groups(groups, source, warnings)
    if not traces:
        raise TraceError(f"{source}: no cold-start trace (no 'coldstart' root span among {count} spans)")
    return fmt, traces
