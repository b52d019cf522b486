"""Spans to OTLP JSON (the protobuf JSON mapping of ``ExportTraceServiceRequest``).

Written by hand rather than through ``google.protobuf.json_format`` because OTLP JSON differs
from the generic mapping: trace and span ids are hex, not base64 (OTLP spec, "JSON Protobuf
Encoding"). 64-bit integers are strings, enums are integers, default values may be omitted.
"""

from __future__ import annotations

import os

from otel_coldstart.deliver import json_text

TYPE_CHECKING = False
if TYPE_CHECKING:  # neither the SDK nor the API is imported: the trace file is written without them
    from collections.abc import Iterable, Sequence
    from typing import Any

    from opentelemetry.sdk.trace import ReadableSpan


def _kind(kind: Any) -> int:
    """OTLP's ``SpanKind`` number of the API's ``SpanKind`` (INTERNAL 0 ... CONSUMER 4): one more.
    By value, so that spans built without the API (``light_trace.py``) encode the same."""
    value = getattr(kind, "value", 0)
    return value + 1 if isinstance(value, int) and 0 <= value <= 4 else 1


def _status_code(code: Any) -> int:
    """OTLP's ``StatusCode`` number: the API's values (UNSET 0, OK 1, ERROR 2) are OTLP's."""
    value = getattr(code, "value", 0)
    return value if isinstance(value, int) and 0 <= value <= 2 else 0


def any_value(value: Any) -> dict[str, Any]:
    if type(value) is str:  # most of a trace's values: the general case below gives the same
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (bytes, bytearray)):
        import base64

        return {"bytesValue": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    return {"stringValue": str(value)}


def attributes(attrs: Any) -> list[dict[str, Any]]:
    return [{"key": key, "value": any_value(value)} for key, value in (attrs or {}).items()]


# The other direction. There are two AnyValue decoders, on purpose, and this is the one place that
# says why:
# - ``value_from_any`` below reads our own documents (the spool) back into SDK attribute values
#   (tuples for arrays, bytes for ``bytesValue``) to be re-sent through the SDK exporters; it
#   trusts their shape (a spool file that does not parse is moved aside whole);
# - ``validate.readers.any_value`` reads anybody's documents to judge them: untrusted, so every
#   number is checked (``validate.numbers``), a bad shape is a ``TraceError`` naming the field, and
#   values stay plain JSON (lists, the base64 text). The validator runs without the recorder or
#   the SDK (``tests/test_import_graph.py``), and this module imports the SDK.


def value_from_any(raw: Any) -> Any:
    """An OTLP JSON ``AnyValue`` of our own as the SDK attribute value it was encoded from."""
    if not isinstance(raw, dict):
        return None
    if "stringValue" in raw:
        return raw["stringValue"]
    if "boolValue" in raw:
        return bool(raw["boolValue"])
    if "intValue" in raw:
        return int(raw["intValue"])
    if "doubleValue" in raw:
        return float(raw["doubleValue"])
    if "bytesValue" in raw:
        import base64

        return base64.b64decode(raw["bytesValue"])
    if "arrayValue" in raw:
        return tuple(value_from_any(v) for v in (raw["arrayValue"] or {}).get("values", []))
    if "kvlistValue" in raw:
        values = (raw["kvlistValue"] or {}).get("values", [])
        return {kv["key"]: value_from_any(kv.get("value")) for kv in values}
    return None


def attributes_from(raw: Any) -> dict[str, Any]:
    """``attributes()`` reversed: OTLP JSON key/value pairs as an SDK attribute dict."""
    return {
        kv["key"]: value_from_any(kv.get("value")) for kv in raw or [] if isinstance(kv, dict) and "key" in kv
    }


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None  # a finished SDK span always has one
    out: dict[str, Any] = {
        "traceId": format(ctx.trace_id, "032x"),
        "spanId": format(ctx.span_id, "016x"),
        "name": span.name,
        "kind": _kind(span.kind),
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
    }
    if span.parent is not None:
        out["parentSpanId"] = format(span.parent.span_id, "016x")
    if span.attributes:
        out["attributes"] = attributes(span.attributes)
    out.update(_events_links_status(span))
    return out


def _events_links_status(span: ReadableSpan) -> dict[str, Any]:
    """A span's ``events``, ``links`` and ``status`` fields, those it has (most spans: none)."""
    rest: dict[str, Any] = {}
    if span.events:
        rest["events"] = [
            {
                "timeUnixNano": str(event.timestamp),
                "name": event.name,
                "attributes": attributes(event.attributes),
            }
            for event in span.events
        ]
    if span.links:
        rest["links"] = [
            {
                "traceId": format(link.context.trace_id, "032x"),
                "spanId": format(link.context.span_id, "016x"),
                "attributes": attributes(link.attributes),
            }
            for link in span.links
        ]
    status = span.status
    code = _status_code(status.status_code) if status is not None else 0
    if code:
        rest["status"] = {"code": code}
        if status.description:
            rest["status"]["message"] = status.description
    return rest


class Document(dict):  # type: ignore[type-arg,unused-ignore]
    """An ``ExportTraceServiceRequest`` as ``encode`` makes it, with its JSON text (what
    ``json_text.dumps`` writes for it) made alongside: ``encode_lines`` writes the text instead of
    encoding the mapping again. A document is the encoding of finished spans: never modified."""

    __slots__ = ("text",)
    text: str


_string = json_text.string
#: ``{"key":<key>,"value":`` of each attribute key seen: a trace repeats a few dozen keys.
_key_texts: dict[str, str] = {}
_KEY_TEXTS_MAX = 1024


def _dumps(value: Any) -> str:
    return json_text.dumps(value, check_circular=False)


def _attributes_and_text(attrs: Any, mapping: bool = True) -> tuple[list[dict[str, Any]], str]:
    """``attributes(attrs)`` (empty when not ``mapping``) and its JSON text."""
    items = []
    parts = []
    for key, value in (attrs or {}).items():
        prefix = _key_texts.get(key) if type(key) is str else None
        if prefix is None:
            prefix = '{"key":' + (_string(key) if isinstance(key, str) else _dumps(key)) + ',"value":'
            if type(key) is str and len(_key_texts) < _KEY_TEXTS_MAX:
                _key_texts[key] = prefix
        if type(value) is str:
            parts.append(prefix + '{"stringValue":' + _string(value) + "}}")
            if mapping:
                items.append({"key": key, "value": {"stringValue": value}})
        else:
            encoded = any_value(value)
            parts.append(prefix + _dumps(encoded) + "}")
            if mapping:
                items.append({"key": key, "value": encoded})
    return items, "[" + ",".join(parts) + "]"


def _span_and_text(span: ReadableSpan, mapping: bool = True) -> tuple[dict[str, Any], str]:
    """``span_to_dict(span)`` (its attributes left out when not ``mapping``) and its JSON text, in
    one pass (``tests/test_otlp_text.py``)."""
    ctx = span.get_span_context()
    assert ctx is not None  # a finished SDK span always has one
    trace_id = format(ctx.trace_id, "032x")
    span_id = format(ctx.span_id, "016x")
    name = span.name
    kind = _kind(span.kind)
    start = str(span.start_time or 0)
    end = str(span.end_time or 0)
    out: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": start,
        "endTimeUnixNano": end,
    }
    text = (
        f'{{"traceId":"{trace_id}","spanId":"{span_id}","name":'
        f"{_string(name) if isinstance(name, str) else _dumps(name)},"
        f'"kind":{kind},"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}"'
    )
    if span.parent is not None:
        parent_id = format(span.parent.span_id, "016x")
        out["parentSpanId"] = parent_id
        text += f',"parentSpanId":"{parent_id}"'
    if span.attributes:
        out["attributes"], attributes_text = _attributes_and_text(span.attributes, mapping)
        text += ',"attributes":' + attributes_text
    rest = _events_links_status(span)
    if rest:  # a few spans (the root, failed imports): through json_text
        out.update(rest)
        text += "," + _dumps(rest)[1:-1]
    return out, text + "}"


def encode(spans: Sequence[ReadableSpan], mapping: bool = True) -> dict[str, Any]:
    """One ``ExportTraceServiceRequest`` document, spans grouped by resource and scope.

    The same mapping as ``span_to_dict`` per span gives (or none: ``mapping=False``, ``TextOnly``),
    and its JSON text with it: the exit writes that text into the trace file, and a document's
    text made here costs less than half of what encoding the finished mapping does (600 spans:
    46 M instructions instead of 75 M)."""
    groups: dict[int, tuple[Any, dict[tuple[str, str], list[ReadableSpan]]]] = {}
    for span in spans:
        resource = span.resource
        scopes = groups.setdefault(id(resource), (resource, {}))[1]
        scope = span.instrumentation_scope
        key = (scope.name, scope.version or "") if scope is not None else ("", "")
        scopes.setdefault(key, []).append(span)
    resource_spans = []
    texts = []
    for resource, scopes in groups.values():
        resource_items, resource_text = _attributes_and_text(resource.attributes if resource else {}, mapping)
        scope_spans = []
        scope_texts = []
        for (name, version), members in scopes.items():
            scope_dict = {"name": name, **({"version": version} if version else {})}
            pairs = [_span_and_text(s, mapping) for s in members]
            scope_spans.append({"scope": scope_dict, "spans": [pair[0] for pair in pairs]})
            spans_text = ",".join(pair[1] for pair in pairs)
            scope_texts.append(f'{{"scope":{_dumps(scope_dict)},"spans":[{spans_text}]}}')
        resource_spans.append({"resource": {"attributes": resource_items}, "scopeSpans": scope_spans})
        texts.append(
            f'{{"resource":{{"attributes":{resource_text}}},"scopeSpans":[{",".join(scope_texts)}]}}'
        )
    text = f'{{"resourceSpans":[{",".join(texts)}]}}'
    if not mapping:
        return TextOnly(text)
    document = Document(resourceSpans=resource_spans)
    document.text = text
    return document


class TextOnly(dict):  # type: ignore[type-arg,unused-ignore]
    """A document's JSON text alone (``encode(spans, mapping=False)``), for a sink that only writes
    it: the trace file at exit, where the mapping nobody reads cost ~22 M instructions for 600
    spans. Empty as a mapping, on purpose: anything that reads it as one finds nothing, and
    ``encode_lines`` writes its text."""

    __slots__ = ("text",)
    text: str

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


def _document_text(document: dict[str, Any]) -> str:
    text = getattr(document, "text", None) if type(document) in (Document, TextOnly) else None
    # Our documents are trees we built (attribute values cleaned to scalars and tuples): no cycle
    # to look for, and the check costs a third of the encoding (600 spans: 2.5 of 7 ms).
    return text if isinstance(text, str) else _dumps(document)


def encode_lines(documents: Iterable[dict[str, Any]]) -> bytes:
    """Documents as JSON lines (the collector file exporter's layout), compact, UTF-8."""
    return "".join(_document_text(doc) + "\n" for doc in documents).encode("utf-8")


def write_all(fd: int, payload: bytes) -> None:
    """``os.write`` until all of ``payload`` is written (a write may be partial)."""
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]


def append_lines(path: str, documents: Iterable[dict[str, Any]], mode: int = 0o644) -> None:
    """Append each document as one JSON line.

    One ``write`` call on an ``O_APPEND`` descriptor, so that several processes sharing a trace
    file (a launcher-traced app that starts traced subprocesses) never interleave their lines.
    """
    payload = encode_lines(documents)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
    try:
        write_all(fd, payload)
    finally:
        os.close(fd)
