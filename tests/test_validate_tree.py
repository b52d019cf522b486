"""Tree repairs: duplicates, orphans, cycles, several roots, clock skew; linear on deep chains."""

from __future__ import annotations

import time

import pytest

from otel_coldstart.validate.analysis import summarize
from otel_coldstart.validate.model import Span, Trace, TraceError
from otel_coldstart.validate.tree import link

TID = "ab" * 16


def span(span_id: int, parent: int | None, name: str = "x", start: int = 0, end: int = 10, **attrs) -> Span:
    return Span(TID, f"{span_id:016x}", None if parent is None else f"{parent:016x}", name, start, end, attrs)


def test_duplicate_ids_keep_the_first() -> None:
    trace = link(Trace(TID, [span(1, None, "coldstart", 0, 100), span(2, 1, "a"), span(2, 1, "b")]))
    assert [c.name for c in trace.root.children] == ["a"]
    assert any("duplicate" in w for w in trace.warnings)


def test_orphans_go_under_the_root() -> None:
    trace = link(Trace(TID, [span(1, None, "coldstart", 0, 100), span(2, 99, "lost")]))
    assert trace.root.children[0].name == "lost"
    assert any("parent is missing" in w for w in trace.warnings)


def test_cycles_are_cut_and_every_span_stays_reachable() -> None:
    spans = [
        span(1, None, "coldstart", 0, 100),
        span(2, 4, "a"),
        span(3, 2, "b"),
        span(4, 3, "c"),
        span(5, 5, "self"),
    ]
    trace = link(Trace(TID, spans))
    reached = {s.span_id for s in trace.root.walk()}
    assert reached == {s.span_id for s in spans}
    assert any("2 cycle(s)" in w for w in trace.warnings)


def test_several_roots_judge_the_earliest() -> None:
    trace = link(Trace(TID, [span(1, None, "coldstart", 50, 100), span(2, None, "coldstart", 0, 80)]))
    assert trace.root.span_id == f"{2:016x}"
    assert any("2 root spans" in w for w in trace.warnings)


def test_clock_skew_is_counted_and_self_time_stays_non_negative() -> None:
    trace = link(
        Trace(
            TID,
            [
                span(1, None, "coldstart", 0, 100),
                span(2, 1, "import x", 90, 200, **{"coldstart.kind": "import"}),
            ],
        )
    )
    assert any("clock skew" in w for w in trace.warnings)
    summary = summarize(trace)
    assert summary.cold_start_ns == 100 and trace.root.self_ns == 90
    assert summary.imports[0].cumulative_ns == 110


def test_no_root_is_an_error() -> None:
    with pytest.raises(TraceError, match="no 'coldstart' root"):
        link(Trace(TID, [span(1, None, "other")]))


@pytest.mark.parametrize("depth", [60_000])
def test_deep_chain_is_linear(depth: int) -> None:
    """A parent-walk cycle check is quadratic on a chain: 60,000 deep would take minutes."""
    spans = [span(1, None, "coldstart", 0, depth + 10)]
    spans += [
        span(
            i,
            i - 1,
            f"import m{i}",
            i,
            depth + 10 - i,
            **{"coldstart.kind": "import", "coldstart.module.name": f"m{i}"},
        )
        for i in range(2, depth)
    ]
    started = time.perf_counter()
    trace = link(Trace(TID, spans))
    summary = summarize(trace)
    elapsed = time.perf_counter() - started
    assert summary.imports_recorded == depth - 2
    assert not trace.warnings
    # Generous: linear work is well under a second here; quadratic is ~1.8e9 steps.
    assert elapsed < 30
