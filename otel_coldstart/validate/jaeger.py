"""Jaeger's query API as a trace source (standard library only: the validator runs in CI images).

Search (the latest cold starts of a service), newest API first:

1. ``GET /api/v3/traces?query.service_name=S&query.operation_name=coldstart&query.start_time_min=
   RFC3339&query.start_time_max=RFC3339&query.search_depth=N`` (Jaeger v1.4x+ and v2), in pages
   of ``PAGE_SIZE`` traces (the API has no page token: the next page's window ends at the oldest
   cold start seen); each answer is parsed as a stream, never held as a JSON tree. The answer is
   every matching trace merged into one ``result.resourceSpans`` list: spans are grouped by
   ``traceId``; a group without its ``coldstart`` root is fetched whole with ``/api/v3/traces/{id}``.
   No match is HTTP 404 with ``{"error": {"message": "No traces found"}}``.
2. When the v3 endpoint is absent (404 or 405 that is not Jaeger's JSON error, an HTML page, a
   501), the classic ``GET /api/traces?service=S&operation=coldstart&limit=N&start=&end=`` (µs),
   removed from Jaeger's main branch after v2.20. Its answers are streamed too (one trace of the
   ``data`` list at a time); one that names errors, or holds no span, is read whole.

One trace: ``/api/v3/traces/{id}``, falling back to ``/api/traces/{id}`` the same way.

Every request has a total deadline (``--timeout``: connect, headers and body together, see
``http_get``). Network errors, timeouts, HTTP 429 and 5xx are retried with exponential backoff;
anything that is still wrong becomes a one-line ``JaegerError`` (a ``TraceError``: exit code 2).
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from otel_coldstart.validate import http_get
from otel_coldstart.validate.model import ROOT_NAME, Span, TraceError
from otel_coldstart.validate.readers import document_spans, read_spans
from otel_coldstart.validate.stream import MalformedJSON

DEFAULT_LIMIT = 20
DEFAULT_SINCE = "1h"
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
#: Traces per v3 search request: a fleet search (``--limit 1000``) is fetched in pages.
PAGE_SIZE = 100
_MAX_BODY = 1 << 30  # a 1 GiB answer is not a cold-start trace
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class JaegerError(TraceError):
    """Jaeger is unreachable, answers an error, or answers something that is not a trace."""


class _Unavailable(Exception):
    """This API flavour is not served here (try the other)."""


class _NotFound(Exception):
    """Jaeger's own 'nothing matches' answer."""


def parse_since(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``, ``"1h30m"`` -> seconds."""
    compact = str(text).strip().lower().replace(" ", "")
    matches = list(_DURATION.finditer(compact))
    if not compact or not matches or "".join(m.group(0) for m in matches) != compact:
        raise ValueError(f"--since {text!r} is not a duration like 90s, 15m, 1h or 2d")
    seconds = sum(float(m.group(1)) * _UNITS[m.group(2)] for m in matches)
    if seconds <= 0:
        raise ValueError(f"--since {text!r} must be positive")
    return seconds


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return _GARBAGE

    def excerpt(self) -> str:
        text = self.body[:80].decode("utf-8", "replace").replace("\n", " ").strip()
        return f"{self.content_type or 'no content type'}, {text!r}"


_GARBAGE = object()


class JaegerClient:
    def __init__(
        self,
        url: str,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.5,
    ) -> None:
        parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise JaegerError(f"--jaeger {url!r} is not an http(s) URL")
        # A base path (Jaeger behind a reverse proxy at /jaeger) is kept; the query string is not.
        self.base = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.requests = 0
        self.page_size = PAGE_SIZE

    # --- HTTP ---------------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> Response:
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {"Accept": "application/json", "User-Agent": "otel-coldstart-validate"}
        last_error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            self.requests += 1
            try:
                answer = http_get.get(url, self.timeout, headers, _MAX_BODY)
            except TimeoutError:  # our deadline, or a connect that timed out
                last_error = f"no complete answer within {self.timeout:g} s"
                continue
            except http_get.BodyTooLarge as exc:
                raise JaegerError(f"Jaeger at {self.base}: {exc}") from None
            except (ConnectionError, OSError, http.client.HTTPException, ValueError) as exc:
                # Refused, reset, dropped mid-answer (RemoteDisconnected, IncompleteRead), not HTTP.
                reason = getattr(exc, "strerror", None) or str(exc)
                last_error = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
                continue
            response = Response(answer.status, answer.body, answer.content_type)
            if answer.status == 429 or (answer.status >= 500 and answer.status != 501):
                last_error = f"HTTP {answer.status} ({response.excerpt()})"
                continue
            return response
        tries = self.retries + 1
        raise JaegerError(
            f"cannot reach Jaeger at {self.base} ({last_error}; {tries} attempt{'s' if tries > 1 else ''})"
        )

    def _document(self, response: Response, what: str) -> Any:
        document = response.json()
        if document is _GARBAGE:
            raise JaegerError(
                f"Jaeger at {self.base} answered {what} with something that is not JSON "
                f"(HTTP {response.status}, {response.excerpt()})"
            )
        return document

    # --- v3 -------------------------------------------------------------------------------------

    def _v3(self, path: str, params: dict[str, Any] | None, what: str) -> list[Span]:
        response = self.get(path, params)
        if response.status == 200:
            # Streamed span by span: a page of a fleet search is never held as a JSON tree.
            try:
                return _streamed_spans(response.body, f"{self.base}{path}", what, self.base)
            except _NotJSON:
                raise _Unavailable(f"HTTP {response.status}") from None
        document = response.json()
        is_jaeger_error = isinstance(document, dict) and isinstance(document.get("error"), dict)
        if response.status == 404 and is_jaeger_error:
            raise _NotFound(str(document["error"].get("message") or "not found"))
        if response.status in (404, 405, 501):
            raise _Unavailable(f"HTTP {response.status}")
        message = document["error"].get("message") if is_jaeger_error else response.excerpt()
        raise JaegerError(f"Jaeger at {self.base} refused {what}: HTTP {response.status}: {message}")

    # --- classic --------------------------------------------------------------------------------

    def _classic(self, path: str, params: dict[str, Any] | None, what: str) -> list[Span]:
        response = self.get(path, params)
        body = response.body
        if response.status == 200 and body.lstrip()[:1] == b"{" and not _ERRORS.search(body):
            # Streamed trace by trace, as the v3 answers are: a fleet's answer is never a JSON tree.
            try:
                spans = _streamed_spans(body, f"{self.base}{path}", what, self.base)
            except _NotJSON:
                spans = []
            if spans:
                return spans
            # Nothing in it: the small answer is read whole below ('no traces', not JSON...).
        document = self._document(response, what)
        if isinstance(document, dict) and document.get("errors"):
            first = document["errors"][0] if isinstance(document["errors"], list) else document["errors"]
            code = first.get("code") if isinstance(first, dict) else None
            message = first.get("msg") if isinstance(first, dict) else first
            if code == 404 or response.status == 404:
                raise _NotFound(str(message))
            raise JaegerError(f"Jaeger at {self.base} answered an error to {what}: {message}")
        if response.status == 404:
            raise _Unavailable(f"HTTP {response.status}")
        if response.status != 200:
            raise JaegerError(
                f"Jaeger at {self.base} refused {what}: HTTP {response.status} ({response.excerpt()})"
            )
        if isinstance(document, dict) and document.get("data") in (None, []):
            raise _NotFound("no traces")
        return _spans(document, f"{self.base}{path}", what, self.base)

    # --- public ---------------------------------------------------------------------------------

    def trace(self, trace_id: str) -> tuple[str, list[Span]]:
        """One trace by id -> (format description, spans)."""
        tid = trace_id.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{1,32}", tid):
            raise JaegerError(f"--trace-id {trace_id!r} is not a hex trace id")
        what = f"trace {tid}"
        try:
            return f"Jaeger v3 API ({self.base})", self._v3(f"/api/v3/traces/{tid}", None, what)
        except _NotFound:
            raise JaegerError(f"Jaeger at {self.base} has no trace {tid}") from None
        except _Unavailable as v3_status:
            try:
                return f"Jaeger classic API ({self.base})", self._classic(f"/api/traces/{tid}", None, what)
            except _NotFound:
                raise JaegerError(f"Jaeger at {self.base} has no trace {tid}") from None
            except _Unavailable as classic_status:
                raise JaegerError(
                    f"{self.base} does not serve Jaeger's query API "
                    f"(v3: {v3_status}, classic: {classic_status})"
                ) from None

    def search(
        self,
        service: str,
        limit: int = DEFAULT_LIMIT,
        since_seconds: float = 3600.0,
        now: datetime | None = None,
    ) -> tuple[str, list[Span]]:
        """The latest ``limit`` cold-start traces of ``service`` -> (format description, spans)."""
        fmt, pages = self.search_pages(service, limit, since_seconds, now)
        return fmt, [span for page in pages for span in page]

    def search_pages(
        self,
        service: str,
        limit: int = DEFAULT_LIMIT,
        since_seconds: float = 3600.0,
        now: datetime | None = None,
    ) -> tuple[str, Iterator[list[Span]]]:
        """``search``, one answer's spans at a time (whole traces, none met twice): a fleet
        search is summarised page by page, never held whole. The first answer is fetched here, so
        that 'nothing found' and 'no such API' are raised by this call."""
        end = now or datetime.now(timezone.utc)
        start = end - timedelta(seconds=since_seconds)
        what = f"a search for service {service!r}"
        window = f"in the last {_human(since_seconds)}"
        try:
            pages = self._v3_pages(service, limit, start, end, what)
            first = next(pages, [])
            return f"Jaeger v3 API ({self.base})", itertools.chain([first], pages)
        except _NotFound:
            raise JaegerError(
                f"Jaeger at {self.base} has no cold-start traces of {service!r} {window}"
            ) from None
        except _Unavailable as v3_status:
            classic_params = {
                "service": service,
                "operation": ROOT_NAME,
                "limit": limit,
                "start": int(start.timestamp() * 1_000_000),
                "end": int(end.timestamp() * 1_000_000),
            }
            try:
                spans = self._classic("/api/traces", classic_params, what)
            except _NotFound:
                raise JaegerError(
                    f"Jaeger at {self.base} has no cold-start traces of {service!r} {window}"
                ) from None
            except _Unavailable as classic_status:
                raise JaegerError(
                    f"{self.base} does not serve Jaeger's query API "
                    f"(v3: {v3_status}, classic: {classic_status})"
                ) from None
            return f"Jaeger classic API ({self.base})", iter([spans])

    def _v3_pages(
        self, service: str, limit: int, start: datetime, end: datetime, what: str
    ) -> Iterator[list[Span]]:
        """The newest ``limit`` cold starts, ``page_size`` traces per request, a page at a time.

        The v3 API has no page token: each next page asks for the same window ending at the
        oldest cold start seen so far (inclusive: traces met twice count once). It ends at
        ``limit`` traces, at a page with fewer traces than asked, or at a page with nothing new.
        """
        page = max(1, min(limit, self.page_size))
        cursor_ns: int | None = None
        seen: set[str] = set()
        while len(seen) < limit:
            params = {
                "query.service_name": service,
                "query.operation_name": ROOT_NAME,
                "query.start_time_min": _rfc3339(start),
                "query.start_time_max": _rfc3339(end) if cursor_ns is None else _rfc3339_ns(cursor_ns),
                "query.search_depth": page,
                # The name before v2.x renamed it; newer versions read search_depth first.
                "query.num_traces": page,
            }
            try:
                spans = self._v3("/api/v3/traces", params, what)
            except (_NotFound, _Unavailable):
                if cursor_ns is None:
                    raise
                return  # the window holds nothing older
            groups: dict[str, list[Span]] = {}
            for span in self._complete(spans):
                groups.setdefault(span.trace_id, []).append(span)
            del spans
            new = [trace_id for trace_id in groups if trace_id not in seen]
            if not new:
                return
            kept: list[Span] = []
            for trace_id in new:
                seen.add(trace_id)
                members = groups[trace_id]
                kept.extend(members)
                roots = [s.start_ns for s in members if s.name == ROOT_NAME] or [s.start_ns for s in members]
                oldest = min(roots)
                cursor_ns = oldest if cursor_ns is None else min(cursor_ns, oldest)
            complete = len(groups) < page
            del groups
            yield kept
            del kept
            if complete:
                return

    def _complete(self, spans: list[Span]) -> list[Span]:
        """Fetch whole any trace whose search answer lacks the cold-start root."""
        by_trace: dict[str, list[Span]] = {}
        for span in spans:
            by_trace.setdefault(span.trace_id, []).append(span)
        complete: list[Span] = []
        for trace_id, members in by_trace.items():
            if any(s.name == ROOT_NAME for s in members):
                complete.extend(members)
                continue
            try:
                complete.extend(self._v3(f"/api/v3/traces/{trace_id}", None, f"trace {trace_id}"))
            except (_NotFound, _Unavailable):
                complete.extend(members)  # reported later as "no cold-start root" for this trace
        return complete


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


#: A classic answer naming errors: read whole, so that they are reported (they come after the data).
_ERRORS = re.compile(rb'"errors"\s*:\s*[\[{"]')


class _NotJSON(Exception):
    """A 200 answer that is not JSON at all (a UI page where the API should be)."""


def _rfc3339_ns(ns: int) -> str:
    """Nanosecond precision (Jaeger parses RFC 3339 with nanoseconds): a page boundary is exact."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    whole = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{fraction:09d}Z"


def _streamed_spans(body: bytes, source: str, what: str, base: str) -> list[Span]:
    chunk = 1 << 20
    view = memoryview(body)
    chunks = (bytes(view[i : i + chunk]) for i in range(0, len(body), chunk))
    try:
        _, groups, _ = read_spans(chunks, source)
    except MalformedJSON:
        if body.lstrip()[:1] not in (b"{", b"["):
            raise _NotJSON() from None
        raise JaegerError(f"Jaeger at {base} answered {what} with malformed JSON") from None
    except TraceError as exc:
        raise JaegerError(
            f"Jaeger at {base} answered {what} with something that is not a trace: {exc}"
        ) from None
    return [span for group in groups.values() for span in group]


def _spans(document: Any, source: str, what: str, base: str) -> list[Span]:
    try:
        _, spans = document_spans(document, source)
    except TraceError as exc:
        raise JaegerError(
            f"Jaeger at {base} answered {what} with something that is not a trace: {exc}"
        ) from None
    return spans
