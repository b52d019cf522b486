"""Where cold-start traces come from: files (any supported format) or a Jaeger query.

On the command line a source is a file path, or a Jaeger URL with the query in its query string
(``diff`` takes two of them)::

    trace.jsonl                                      a file: OTLP JSON (lines/document/gzip), Jaeger JSON
    http://localhost:16686?service=shop&limit=20&since=1h   the latest cold starts of a service
    http://localhost:16686?trace_id=4bf92f35...      one trace
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from otel_coldstart.validate import jaeger
from otel_coldstart.validate.model import Trace, TraceError
from otel_coldstart.validate.readers import read_file, traces_from_spans


@dataclass(frozen=True)
class JaegerQuery:
    url: str
    service: str | None = None
    trace_id: str | None = None
    limit: int = jaeger.DEFAULT_LIMIT
    since: str = jaeger.DEFAULT_SINCE
    timeout: float = jaeger.DEFAULT_TIMEOUT
    retries: int = jaeger.DEFAULT_RETRIES

    def describe(self) -> str:
        if self.trace_id:
            return f"{self.url} trace {self.trace_id}"
        return f"{self.url} service {self.service} (latest {self.limit}, last {self.since})"

    def client(self) -> tuple[jaeger.JaegerClient, float]:
        """The client for this query and its look-back in seconds, once the query is checked
        (``TraceError`` for a bad limit, look-back, or a query that names nothing to fetch)."""
        if self.limit < 1:
            raise TraceError("--limit must be at least 1")
        if not self.trace_id and not self.service:
            raise TraceError("a Jaeger source needs --service NAME or --trace-id ID")
        try:
            since_seconds = jaeger.parse_since(self.since)
        except ValueError as exc:
            raise TraceError(str(exc)) from None
        return jaeger.JaegerClient(self.url, timeout=self.timeout, retries=self.retries), since_seconds


@dataclass(frozen=True)
class Loaded:
    description: str
    fmt: str
    traces: list[Trace]


def parse_spec(spec: str) -> str | JaegerQuery:
    """A command-line source: a file path, or a Jaeger URL carrying its query."""
    if not spec.startswith(("http://", "https://")):
        return spec
    parts = urllib.parse.urlsplit(spec)
    query = urllib.parse.parse_qs(parts.query)
    known = {"service", "trace_id", "limit", "since"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise TraceError(
            f"{spec}: unknown query parameter(s) {', '.join(unknown)}; use {', '.join(sorted(known))}"
        )
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    one = {key: values[-1] for key, values in query.items()}
    if not one.get("service") and not one.get("trace_id"):
        raise TraceError(f"{spec}: a Jaeger source needs ?service=NAME or ?trace_id=ID")
    try:
        limit = int(one.get("limit", jaeger.DEFAULT_LIMIT))
    except ValueError:
        raise TraceError(f"{spec}: limit must be an integer") from None
    return JaegerQuery(
        base, one.get("service"), one.get("trace_id"), limit, one.get("since", jaeger.DEFAULT_SINCE)
    )


def load(source: str | JaegerQuery) -> Loaded:
    """Read every cold-start trace of a source (oldest first). Raises ``TraceError``."""
    if isinstance(source, str):
        fmt, traces = read_file(source)
        return Loaded(source, fmt, traces)
    client, since_seconds = source.client()
    if source.trace_id:
        fmt, spans = client.trace(source.trace_id)
    else:
        assert source.service  # client() refuses a query that names neither
        fmt, spans = client.search(source.service, source.limit, since_seconds)
    described = source.describe()
    traces = traces_from_spans(spans, described)
    if not traces:
        raise TraceError(
            f"{described}: no cold-start trace (no 'coldstart' root span among {len(spans)} spans)"
        )
    # The search may answer more than asked: keep the newest.
    return Loaded(described, fmt, traces[-source.limit :] if not source.trace_id else traces)


def load_many(sources: list[str | JaegerQuery]) -> Loaded:
    """Several sources judged together (e.g. the trace files of a CI matrix)."""
    loaded = [load(s) for s in sources]
    if len(loaded) == 1:
        return loaded[0]
    # The same trace reached twice (one file given twice, a trace in a file and in Jaeger) counts once.
    unique = {t.trace_id: t for item in loaded for t in item.traces}
    traces = sorted(unique.values(), key=lambda t: t.root.start_ns if t.root else 0)
    formats = sorted({item.fmt for item in loaded})
    return Loaded(", ".join(item.description for item in loaded), " + ".join(formats), traces)
