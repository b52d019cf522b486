"""Rebuilding the span tree from flat spans, with documented repairs.

Repairs (each adds a line to ``Trace.warnings``):
- duplicate span ids: the first span wins, later ones are dropped;
- a parent id that is not in the trace: the span is attached to the cold-start root;
- a cycle in parent links: the link that closes the cycle is cut, the span goes under the root
  (found in one linear pass, so deep chains cost no more than wide trees);
- a child outside its parent's interval (clock skew) is kept as is and counted: durations are
  each span's own, and self time never goes below zero;
- several cold-start roots in one trace: the earliest is judged.
A trace with no cold-start root span is an error, not something to guess; so is a root that
lasts no time, times missing or equal (``InconsistentTrace``: that verdict would judge nonsense).
"""

from __future__ import annotations

from otel_coldstart import conventions as cv
from otel_coldstart.validate.model import ROOT_NAME, InconsistentTrace, Span, Trace, TraceError


def _find_root(trace: Trace) -> Span:
    roots = [s for s in trace.spans if s.name == ROOT_NAME and not s.parent_id]
    if not roots:
        roots = [s for s in trace.spans if s.attributes.get(cv.KIND) == cv.KIND_ROOT]
    if not roots:
        raise TraceError(
            f"trace {trace.trace_id or '?'} has no '{ROOT_NAME}' root span (is it a cold-start trace?)"
        )
    if len(roots) > 1:
        trace.warnings.append(f"{len(roots)} root spans; judging the earliest")
        roots.sort(key=lambda s: s.start_ns)
    return roots[0]


def _check_root(trace: Trace, root: Span) -> None:
    what = f"trace {trace.trace_id or '?'}: the '{root.name}' root span"
    if root.end_ns <= root.start_ns:
        raise InconsistentTrace(
            f"{what} lasts no time (endTimeUnixNano {root.end_ns} <= start {root.start_ns})"
        )


def link(trace: Trace) -> Trace:
    """Fill ``children``/``parent`` links and ``trace.root``. Raises ``TraceError`` without a root."""
    unique: dict[str, Span] = {}
    duplicates = 0
    for span in trace.spans:
        span.children = []
        span.parent = None
        if span.span_id in unique:
            duplicates += 1
            continue
        unique[span.span_id] = span
    if duplicates:
        trace.warnings.append(f"{duplicates} span(s) with a duplicate id dropped")
    trace.spans = list(unique.values())
    root = _find_root(trace)
    _check_root(trace, root)
    trace.root = root

    orphans = cycles = skewed = 0
    parent_of: dict[int, Span | None] = {}
    for span in trace.spans:
        if span is root:
            parent_of[id(span)] = None
            continue
        parent = unique.get(span.parent_id) if span.parent_id else None
        if parent is None:
            orphans += 1
            parent = root
        else:
            span.parent_id = parent.span_id  # the same text: one string object, not two
        parent_of[id(span)] = parent
    cycles = _cut_cycles(trace.spans, parent_of, root)
    for span in trace.spans:
        parent = parent_of[id(span)]
        if parent is None:
            continue
        span.parent = parent
        parent.children.append(span)
        outside = span.start_ns < parent.start_ns or span.end_ns > parent.end_ns
        if outside and span.attributes.get(cv.KIND) != cv.KIND_INVOCATION:  # after ready by design
            skewed += 1
    for span in trace.spans:
        if len(span.children) > 1:
            span.children.sort(key=lambda s: (s.start_ns, s.end_ns))
    if orphans:
        trace.warnings.append(f"{orphans} span(s) whose parent is missing attached to the root")
    if cycles:
        trace.warnings.append(
            f"{cycles} cycle(s) in parent links cut; the span closing each went under the root"
        )
    if skewed:
        trace.warnings.append(
            f"{skewed} span(s) lie outside their parent's time (clock skew?); kept as they are"
        )
    return trace


def _cut_cycles(spans: list[Span], parent_of: dict[int, Span | None], root: Span) -> int:
    """Cut every cycle in the parent links in one linear pass (each span is walked at most once).

    Walking up from each unvisited span, a span met again on the current walk closes a cycle: the
    link from the last span of the walk is cut and that span goes under the root.
    """
    DONE, ON_PATH = 2, 1
    state: dict[int, int] = {id(root): DONE}
    cycles = 0
    for start in spans:
        if state.get(id(start)):
            continue
        path: list[Span] = []
        node: Span | None = start
        while node is not None and not state.get(id(node)):
            state[id(node)] = ON_PATH
            path.append(node)
            node = parent_of[id(node)]
        if node is not None and state[id(node)] == ON_PATH:
            cycles += 1
            parent_of[id(path[-1])] = root
        for member in path:
            state[id(member)] = DONE
    return cycles
