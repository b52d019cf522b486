"""Streaming JSON: trace documents become span records as they are parsed, never held whole.

The input is a sequence of JSON values separated by whitespace (one OTLP document, one per line,
a pretty-printed Jaeger answer...), arriving as byte chunks of any size (a file, a gzip stream,
an HTTP body). ``Reader`` walks the outer structure of each document itself and hands only the
leaves to the standard library's C scanner: one span object at a time for OTLP (``resourceSpans
-> scopeSpans -> spans``), one trace at a time for Jaeger's classic ``data`` list. So memory holds
one span's dict plus the records made so far, never the document: a 55 MB line costs what its
records cost, not the 6x its ``json.loads`` tree would.

Documented repair, as before: a last value with no newline after it that does not parse (a writer
interrupted mid-line) is dropped, with a warning, when earlier documents held spans.
"""

from __future__ import annotations

import codecs
import json
import json.decoder
import json.scanner
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from otel_coldstart.validate.model import Span, TraceError

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
# The C scanner and string scanner json.loads itself uses (typeshed does not describe them).
_scan = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]


class MalformedJSON(TraceError):
    """The input is not JSON (or ends inside a value)."""


class Reader:
    """A text window over byte chunks, refilled on demand; positions are absolute in the buffer."""

    def __init__(self, chunks: Iterable[bytes], source: str) -> None:
        self._chunks = iter(chunks)
        self._decode = codecs.getincrementaldecoder("utf-8")().decode
        self.source = source
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line = 1  # line number of buf[0]
        self.doc_line = 1  # line on which the current top-level value starts
        self._bytes = 0
        # Newlines counted in buf[:_mark] (line_at is asked once per document: counting from the
        # start of a 1 MB window each time cost a millisecond per small document).
        self._mark = 0
        self._mark_lines = 0

    # --- the window ------------------------------------------------------------------------------

    def _refill(self, wanted: int) -> bool:
        """Append at least ``wanted`` more characters (or up to EOF). False at EOF."""
        if self.eof:
            return False
        if self.pos > (1 << 20) or self.pos > len(self.buf) // 2:
            self.line += self._count_lines(self.pos)
            self.buf = self.buf[self.pos :]
            self.pos = 0
            self._mark = self._mark_lines = 0
        parts = [self.buf]
        got = 0
        while got < wanted:
            chunk = next(self._chunks, None)
            try:
                text = self._decode(chunk or b"", final=chunk is None)
            except UnicodeDecodeError as exc:
                raise TraceError(f"{self.source}: not UTF-8 text (byte {self._bytes + exc.start})") from None
            if chunk is None:
                self.eof = True
                parts.append(text)
                break
            self._bytes += len(chunk)
            parts.append(text)
            got += len(text)
        self.buf = "".join(parts)
        return True

    def ws(self) -> str:
        """Skip whitespace; the next character, or "" at the end of the input."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._refill(1 << 16):
                return ""

    def line_at(self, pos: int | None = None) -> int:
        return self.line + self._count_lines(self.pos if pos is None else pos)

    def _count_lines(self, pos: int) -> int:
        """Newlines in buf[:pos]."""
        if pos < self._mark:
            return self.buf.count("\n", 0, pos)
        self._mark_lines += self.buf.count("\n", self._mark, pos)
        self._mark = pos
        return self._mark_lines

    def error(self, message: str, pos: int | None = None) -> MalformedJSON:
        line = self.line_at(pos)
        where = "" if line == self.doc_line else f" on line {line}"
        return MalformedJSON(f"{self.source}: line {self.doc_line}: malformed JSON ({message}{where})")

    def value(self) -> Any:
        """The JSON value at the current position (after whitespace), parsed whole."""
        self.ws()
        wanted = 1 << 16
        while True:
            try:
                value, end = _scan(self.buf, self.pos)
            except StopIteration:
                if self._refill(wanted):
                    wanted *= 2  # geometric: a large value is re-scanned O(log n) times, not O(n)
                    continue
                raise self.error("expecting a value") from None
            except json.JSONDecodeError as exc:
                if self._refill(wanted):
                    wanted *= 2
                    continue
                raise self.error(exc.msg, exc.pos) from None
            except RecursionError:
                raise self.error("nested too deeply") from None
            # A number may continue in the next chunk ("12" + "34"): only trust an end inside.
            if end >= len(self.buf) and self._refill(wanted):
                continue
            self.pos = end
            return value

    def expect(self, char: str) -> None:
        if self.ws() != char:
            found = self.buf[self.pos : self.pos + 1] or "end of input"
            raise self.error(f"expecting {char!r}, found {found!r}")
        self.pos += 1

    def key(self) -> str:
        if self.ws() != '"':
            raise self.error("expecting a property name in double quotes")
        wanted = 1 << 16
        while True:
            try:
                key, end = _scanstring(self.buf, self.pos + 1)
                break
            except json.JSONDecodeError as exc:
                if not self._refill(wanted):
                    raise self.error(exc.msg) from None
                wanted *= 2
        self.pos = end
        self.expect(":")
        return key

    def members(self) -> Iterator[str]:
        """The keys of the object at the current position; the caller consumes each value."""
        self.expect("{")
        if self.ws() == "}":
            self.pos += 1
            return
        while True:
            yield self.key()
            char = self.ws()
            self.pos += 1
            if char == "}":
                return
            if char != ",":
                self.pos -= 1
                raise self.error("expecting ',' or '}' after a property value")

    def elements(self) -> Iterator[None]:
        """One step per element of the array at the current position; the caller consumes each."""
        self.expect("[")
        if self.ws() == "]":
            self.pos += 1
            return
        while True:
            yield None
            char = self.ws()
            self.pos += 1
            if char == "]":
                return
            if char != ",":
                self.pos -= 1
                raise self.error("expecting ',' or ']' after an array element")


# --- documents ----------------------------------------------------------------------------------

#: (raw span dict, resource attributes dict, source) -> Span, or None for a span filtered out
OtlpSpan = Callable[[Any, dict[str, Any], str], "Span | None"]


class Document:
    """What one top-level value held: its format and its spans (kept until it is complete)."""

    __slots__ = ("fmt", "line", "spans")

    def __init__(self, line: int) -> None:
        self.fmt = ""
        self.spans: list[Span] = []
        self.line = line


def documents(
    reader: Reader,
    otlp_span: OtlpSpan,
    resource_of: Callable[[Any], dict[str, Any]],
    whole: Callable[[Any, str], tuple[str, list[Span]]],
    jaeger_trace: Callable[[Any, str], list[Span]],
) -> Iterator[Document]:
    """Every top-level JSON value of the input as a ``Document``.

    ``otlp_span`` converts one OTLP span; ``resource_of`` one ``resource`` object; ``whole`` any
    other (small) document parsed in full; ``jaeger_trace`` one trace of a classic ``data`` list.
    """
    while reader.ws():
        document = Document(reader.line_at())
        reader.doc_line = document.line
        source = f"{reader.source}:{document.line}"
        char = reader.ws()
        if char == "{":
            rest: dict[str, Any] = {}
            for key in reader.members():
                if key == "resourceSpans" and reader.ws() == "[":
                    document.fmt = "otlp"
                    _resource_spans(reader, document, otlp_span, resource_of, source)
                elif key == "result" and reader.ws() == "{":
                    for inner in reader.members():
                        if inner == "resourceSpans" and reader.ws() == "[":
                            document.fmt = "v3"
                            _resource_spans(reader, document, otlp_span, resource_of, source)
                        else:
                            reader.value()
                    if not document.fmt:
                        rest[key] = {}
                elif key == "data" and reader.ws() == "[":
                    document.fmt = "classic"
                    for _ in reader.elements():
                        document.spans.extend(jaeger_trace(reader.value(), source))
                else:
                    rest[key] = reader.value()
            if not document.fmt:
                document.fmt, document.spans = whole(rest, source)
        elif char == "[":
            document.fmt = "classic"
            for _ in reader.elements():
                trace = reader.value()
                if not isinstance(trace, dict) or "spans" not in trace:
                    raise TraceError(f"{source}: not a trace document (expected OTLP JSON or Jaeger JSON)")
                document.spans.extend(jaeger_trace(trace, source))
        else:
            document.fmt, document.spans = whole(reader.value(), source)
        yield document


def _resource_spans(
    reader: Reader, document: Document, otlp_span: OtlpSpan, resource_of: Callable[[Any], dict], source: str
) -> None:
    for _ in reader.elements():
        if reader.ws() != "{":
            raise TraceError(f"{source}: resourceSpans entry is not an object")
        # The resource may come after the spans (JSON objects are unordered): the spans share one
        # dict that is filled when it arrives.
        resource: dict[str, Any] = {}
        for key in reader.members():
            if key == "resource":
                resource.update(resource_of(reader.value()))
            elif key in ("scopeSpans", "instrumentationLibrarySpans") and reader.ws() == "[":
                for _ in reader.elements():
                    if reader.ws() != "{":
                        raise TraceError(f"{source}: scopeSpans entry is not an object")
                    for scope_key in reader.members():
                        if scope_key == "spans" and reader.ws() == "[":
                            spans = document.spans
                            for _ in reader.elements():
                                span = otlp_span(reader.value(), resource, source)
                                if span is not None:  # None: a span the caller filters out
                                    spans.append(span)
                        elif scope_key == "spans" and reader.ws() != "n":
                            raise TraceError(f"{source}: spans is not a list")
                        else:
                            reader.value()
            elif key in ("scopeSpans", "instrumentationLibrarySpans") and reader.ws() != "n":
                raise TraceError(f"{source}: scopeSpans is not a list")
            else:
                reader.value()
