"""A fleet of cold starts in bounded memory: each trace is summarised as it completes, and dropped.

``validate`` reads every source (files, Jaeger queries) through ``gather``. A trace's spans cost
about a kilobyte each once parsed and linked; 1,000 cold starts of 3,000 imports would need
gigabytes. So each cold start is summarised as soon as its trace is complete (``readers.TraceFeed``)
and kept as a compact summary (``analysis.compact``: the figures the judgement, the distribution,
the trace list and the fleet table read, ~50 bytes per import), without its spans.

Only the representative cold start (the one nearest the judged statistic, known once all are read)
needs its spans again, for the report's details, the advice and the HTML icicle. Full traces are
kept while they total at most ``KEEP_SPANS`` spans (a small fleet, or one huge trace, is never read
twice); past that, the one nearest the running statistic keeps its spans and the others are
compacted. If the representative is not the one kept, it is read again at the end: from its file
(the other traces' spans are scanned, not converted) or fetched from Jaeger by its id.

Memory is then: the spans of incomplete traces (``readers.HOLD_SPANS``), the kept trees
(``KEEP_SPANS``, or one trace larger than that), one compact summary per cold start.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from otel_coldstart.validate import analysis, fleet, inflate, jaeger, readers, roles, stats
from otel_coldstart.validate.analysis import Summary
from otel_coldstart.validate.model import Trace, TraceError
from otel_coldstart.validate.readers import TraceFeed, traces_from_spans
from otel_coldstart.validate.sources import JaegerQuery
from otel_coldstart.validate.targets import Targets, names_import

#: Spans of full traces kept besides the compact summaries, so that a small fleet needs no re-read.
KEEP_SPANS = 50_000


@dataclass
class Gathered:
    """What ``validate`` judges: the cold starts of every source, oldest first."""

    description: str
    fmt: str
    judged: list[Summary]
    helpers: list[Summary]
    #: the ``fleet`` section of the result document (per-module p50/p95 across the cold starts)
    fleet: dict[str, Any]
    _sources: list[str | JaegerQuery] = field(repr=False, default_factory=list)
    #: trace id -> index in ``_sources`` of the source it was read from
    _origin: dict[str, int] = field(repr=False, default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.judged) + len(self.helpers)

    def full(self, summary: Summary) -> Summary:
        """``summary`` with its spans: itself if they were kept, else read again."""
        if not summary.compact:
            return summary
        source = self._sources[self._origin[summary.trace.trace_id]]
        return analysis.summarize(_read_again(source, summary.trace))


def gather(
    sources: list[str | JaegerQuery],
    statistic: str,
    targets: Targets,
    keep_spans: int | None = None,
    hold_spans: int | None = None,
) -> Gathered:
    """Read, summarise and keep compactly every cold start of ``sources``. Raises ``TraceError``.

    ``keep_spans`` and ``hold_spans`` default to ``KEEP_SPANS`` and ``readers.HOLD_SPANS``."""
    kept = _Kept(statistic, targets, KEEP_SPANS if keep_spans is None else keep_spans)
    hold_spans = readers.HOLD_SPANS if hold_spans is None else hold_spans
    descriptions, formats = [], []
    for index, source in enumerate(sources):
        if isinstance(source, str):
            description, fmt = _gather_file(source, index, kept, hold_spans)
        else:
            description, fmt = _gather_jaeger(source, index, kept)
        descriptions.append(description)
        formats.append(fmt)
    ordered = sorted(kept.summaries.values(), key=lambda item: (_start(item[1]), item[0]))
    summaries = [summary for _, summary in ordered]
    judged, helpers = roles.split(summaries)
    if len(sources) == 1:
        description, fmt = descriptions[0], formats[0]
    else:
        description, fmt = ", ".join(descriptions), " + ".join(sorted(set(formats)))
    # Built here, each cold start's times released as they join the table: held once, not twice.
    table = fleet.section(judged, release=True)
    return Gathered(description, fmt, judged, helpers, table, list(sources), kept.origin)


def _start(summary: Summary) -> int:
    root = summary.trace.root
    return root.start_ns if root is not None else 0


class _Kept:
    """The summaries so far, and the budget of full traces kept beside them.

    Every step is cheap in the number of cold starts (100,000 small traces are a fleet too): the
    judged cold-start times are kept sorted, and the full traces in a dict of their own."""

    def __init__(self, statistic: str, targets: Targets, keep_spans: int) -> None:
        self.statistic = statistic
        self.keep_import = names_import(targets)
        self.keep_spans = keep_spans
        #: trace id -> ((source index, order in the source), summary); a trace met again in a
        #: later source replaces the summary and keeps its place, as when traces were listed whole.
        self.summaries: dict[str, tuple[tuple[int, int], Summary]] = {}
        #: trace id -> index of the source its summary was read from (the last that held it)
        self.origin: dict[str, int] = {}
        #: the summaries that still hold their spans, and how many spans that is
        self.full: dict[str, Summary] = {}
        self.full_spans = 0
        #: the judged cold starts' durations, sorted: the running statistic without a sort
        self.cold_starts: list[int] = []
        # Identical module lists (a fleet of one program) share one tuple of names.
        self._names: dict[tuple[str, ...], tuple[str, ...]] = {}

    def add(self, trace: Trace, index: int, order: int) -> None:
        """A complete cold-start trace: the ``order``-th of source ``index``."""
        rank = (index, order)
        summary = analysis.summarize(trace)
        previous = self.summaries.get(trace.trace_id)
        if previous is not None:
            rank = previous[0]
            self._forget(trace.trace_id, previous[1])
        if roles.is_helper(summary):
            summary = self._compact(summary)  # never the representative
        else:
            bisect.insort(self.cold_starts, summary.cold_start_ns)
            self.full[trace.trace_id] = summary
            self.full_spans += len(trace.spans)
        self.summaries[trace.trace_id] = (rank, summary)
        self.origin[trace.trace_id] = index
        if self.full_spans > self.keep_spans:
            self._over_budget()

    def drop(self, trace_ids: Iterable[str]) -> None:
        for trace_id in trace_ids:
            found = self.summaries.pop(trace_id, None)
            if found is not None:
                self._forget(trace_id, found[1])

    def _forget(self, trace_id: str, summary: Summary) -> None:
        if roles.is_helper(summary):
            return
        del self.cold_starts[bisect.bisect_left(self.cold_starts, summary.cold_start_ns)]
        if self.full.pop(trace_id, None) is not None:
            self.full_spans -= len(summary.trace.spans)

    def _over_budget(self) -> None:
        """Compact the full traces farthest from the running statistic of the cold starts until
        the rest fit in three quarters of the budget (so that this sort is not redone for every
        small trace that follows); the nearest one keeps its spans even alone over the budget."""
        target = stats.compute_sorted(self.cold_starts, self.statistic)
        full = sorted(
            self.full.items(), key=lambda item: (abs(item[1].cold_start_ns - target), item[1].cold_start_ns)
        )
        for trace_id, summary in reversed(full[1:]):
            if self.full_spans <= self.keep_spans * 3 // 4:
                break
            rank = self.summaries[trace_id][0]
            del self.full[trace_id]
            self.full_spans -= len(summary.trace.spans)
            self.summaries[trace_id] = (rank, self._compact(summary))

    def _compact(self, summary: Summary) -> Summary:
        small = analysis.compact(summary, self.keep_import)
        if small.module_times is not None:
            names = small.module_times[0]
            shared = self._names.setdefault(names, names)
            small.module_times = (shared, small.module_times[1], small.module_times[2])
        return small


def _gather_file(path: str, index: int, kept: _Kept, hold_spans: int) -> tuple[str, str]:
    feed = TraceFeed(inflate.file_chunks(path), path, hold_spans)
    found: list[str] = []
    for trace in feed:
        kept.add(trace, index, feed.order[trace.trace_id])
        found.append(trace.trace_id)
    if feed.late:
        # Spans that came after their trace was summarised: that summary is wrong; read those
        # traces again, whole (rare: a trace scattered across a file).
        kept.drop(feed.late)
        again = TraceFeed(inflate.file_chunks(path), path, None, frozenset(feed.late))
        for trace in again:
            kept.add(trace, index, feed.order[trace.trace_id])
            found.append(trace.trace_id)
    if not feed.span_count:
        raise TraceError(f"{path}: no spans found ({feed.fmt})")
    if not found:
        raise TraceError(
            f"{path}: no cold-start trace (no 'coldstart' root span among {feed.span_count} spans)"
        )
    if feed.warnings:
        for trace_id in set(found):
            item = kept.summaries.get(trace_id)
            if item is not None:
                item[1].trace.warnings[:0] = feed.warnings
    return path, feed.fmt


def _gather_jaeger(query: JaegerQuery, index: int, kept: _Kept) -> tuple[str, str]:
    client, since_seconds = query.client()
    described = query.describe()
    if query.trace_id:
        fmt, spans = client.trace(query.trace_id)
        pages: Iterator[list] = iter([spans])
    else:
        assert query.service  # client() refuses a query that names neither
        fmt, pages = client.search_pages(query.service, query.limit, since_seconds)
    found: list[tuple[int, int, str]] = []
    count = 0
    order = 0
    for spans in pages:
        count += len(spans)
        for trace in traces_from_spans(spans, described):
            kept.add(trace, index, order)
            found.append((_start(kept.summaries[trace.trace_id][1]), order, trace.trace_id))
            order += 1
    if not found:
        raise TraceError(f"{described}: no cold-start trace (no 'coldstart' root span among {count} spans)")
    if not query.trace_id and len(found) > query.limit:
        # The search may answer more than asked: keep the newest.
        found.sort()
        kept.drop(trace_id for _, _, trace_id in found[: len(found) - query.limit])
    return described, fmt


def _read_again(source: str | JaegerQuery, bare: Trace) -> Trace:
    """The whole trace of a compacted summary, from where it was read."""
    if isinstance(source, str):
        traces = list(TraceFeed(inflate.file_chunks(source), source, None, frozenset([bare.trace_id])))
    else:
        client = jaeger.JaegerClient(source.url, timeout=source.timeout, retries=source.retries)
        _, spans = client.trace(bare.trace_id)
        traces = [t for t in traces_from_spans(spans, source.describe()) if t.trace_id == bare.trace_id]
    if not traces:
        raise TraceError(f"{bare.source}: trace {bare.trace_id} is gone: it changed while it was read")
    trace = traces[0]
    # The same repairs and read warnings as the first time (the input's own come first).
    trace.warnings = list(bare.warnings)
    return trace
