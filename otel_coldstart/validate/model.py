"""The trace model every reader produces and every judgement reads.

Format-neutral: OTLP JSON, Jaeger's classic JSON and Jaeger's v3 API all become ``Trace`` objects
with times in nanoseconds since the epoch and attributes as plain Python values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_coldstart import conventions as cv


class TraceError(ValueError):
    """The input is not a usable trace (malformed, truncated, no root...). One line, for humans."""


class InconsistentTrace(TraceError):
    """A cold-start trace whose figures contradict each other: judging it would judge nonsense."""


# Slotted: a fleet run holds millions of spans, and a per-instance __dict__ would double their cost.
@dataclass(slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    #: A tuple unless there are events: most spans have none, and one shared () costs nothing.
    events: Sequence[SpanEvent] = ()
    status_code: int = 0  # OTLP: 0 unset, 1 ok, 2 error
    status_message: str = ""
    resource: dict[str, Any] = field(default_factory=dict)
    children: list[Span] = field(default_factory=list, repr=False)
    parent: Span | None = field(default=None, repr=False)

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def self_ns(self) -> int:
        """Time not covered by children (children may overlap when they ran in threads; a child
        outside its parent's interval through clock skew only counts where it overlaps it)."""
        if not self.children:
            return self.duration_ns
        return max(0, self.duration_ns - _covered_ns(self.children, self.start_ns, self.end_ns))

    @property
    def kind(self) -> str:
        return str(self.attributes.get(cv.KIND, ""))

    def walk(self) -> Iterator[Span]:
        stack = [self]
        while stack:
            span = stack.pop()
            yield span
            stack.extend(reversed(span.children))

    def path(self) -> tuple[str, ...]:
        names = []
        node: Span | None = self
        while node is not None:
            names.append(node.name)
            node = node.parent
        return tuple(reversed(names))


def _covered_ns(children: list[Span], low: int, high: int) -> int:
    return union_ns(
        [
            (max(c.start_ns, low), min(c.end_ns, high))
            for c in children
            if c.end_ns > low and c.start_ns < high
        ]
    )


def union_ns(intervals: list[tuple[int, int]]) -> int:
    """Length of the union of ``(start, end)`` intervals (overlaps counted once)."""
    covered = 0
    current_start = current_end = 0
    started = False
    for start, end in sorted(intervals):
        if not started or start > current_end:
            covered += current_end - current_start
            current_start, current_end, started = start, end, True
        else:
            current_end = max(current_end, end)
    return covered + (current_end - current_start)


@dataclass(slots=True)
class Trace:
    trace_id: str
    spans: list[Span]
    source: str = ""
    #: Repairs made while linking (orphans re-attached, duplicates dropped...), for the report.
    warnings: list[str] = field(default_factory=list)
    root: Span | None = None

    @property
    def service_name(self) -> str:
        if self.root is not None:
            return str(self.root.resource.get("service.name", ""))
        return ""


ROOT_NAME = cv.ROOT_SPAN
