"""Which imports cost most across all the cold starts, not only in the representative one.

For every module imported by any cold start: in how many it appeared, and the p50 and p95 of its
self and cumulative import time over those cold starts. A module imported several times in one
trace (several processes in one trace) counts its summed time once for that cold start. Ranked by
p95 self time: the imports that make the slow starts slow. Values are kept as compact integer
arrays (8 bytes per module per cold start), so 1,000 cold starts of 3,000 imports cost ~50 MB.

JSON (``fleet`` in the result document)::

    {"cold_starts": int, "modules": [{"module", "cold_starts", "self_ms": {"p50", "p95"},
                                      "cumulative_ms": {"p50", "p95"}}]}
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Sequence
from html import escape
from typing import Any

from otel_coldstart.validate.analysis import Summary, module_times
from otel_coldstart.validate.stats import percentile

TOP = 20
MS = 1e6


class ModuleTimes:
    """Per-module self and cumulative import times, one value per cold start, fed one at a time."""

    def __init__(self) -> None:
        self.cold_starts = 0
        self._self: dict[str, array] = {}
        self._cumulative: dict[str, array] = {}

    def add(self, summary: Summary) -> None:
        self.cold_starts += 1
        modules, own, cumulative = summary.module_times or module_times(summary.imports)
        for module, self_ns, cumulative_ns in zip(modules, own, cumulative, strict=True):
            values = self._self.get(module)
            if values is None:
                values = self._self[module] = array("q")
                self._cumulative[module] = array("q")
            values.append(self_ns)
            self._cumulative[module].append(cumulative_ns)

    def document(self, top: int = TOP) -> dict[str, Any]:
        """The ``top`` modules by p95 self time; nothing to rank for fewer than 2 cold starts."""
        if self.cold_starts < 2:
            return {"cold_starts": self.cold_starts, "modules": []}
        # Rank on one number per module first: the full rows only for the few that are shown.
        ranked = heapq.nlargest(
            top,
            self._self.items(),
            key=lambda item: (percentile(sorted(item[1]), 95), percentile(sorted(item[1]), 50)),
        )
        rows: list[dict[str, Any]] = [
            {
                "module": module,
                "cold_starts": len(values),
                "self_ms": _p50_p95(values),
                "cumulative_ms": _p50_p95(self._cumulative[module]),
            }
            for module, values in ranked
        ]
        rows.sort(key=lambda r: (-r["self_ms"]["p95"], -r["self_ms"]["p50"], r["module"]))
        return {"cold_starts": self.cold_starts, "modules": rows}


def _p50_p95(values: Sequence[int]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(percentile(ordered, 50) / MS, 3), "p95": round(percentile(ordered, 95) / MS, 3)}


def section(summaries: Sequence[Summary], top: int = TOP, release: bool = False) -> dict[str, Any]:
    """The ``fleet`` section of the result document (``modules`` empty for one cold start: its
    slowest imports are in ``representative``).

    ``release``: drop each compact summary's module times once they are in the table, so that a
    fleet's times are never held twice (the summaries cannot feed another table after that)."""
    times = ModuleTimes()
    if len(summaries) > 1:
        for summary in summaries:
            times.add(summary)
            if release and summary.compact:
                summary.module_times = ((), array("q"), array("q"))
    else:
        times.cold_starts = len(summaries)
    return times.document(top)


def render_text(document: dict[str, Any]) -> list[str]:
    """Lines for the terminal report; nothing for a single cold start (the imports list says it)."""
    fleet = document.get("fleet")
    if not fleet or fleet["cold_starts"] < 2 or not fleet["modules"]:
        return []
    lines = [
        "",
        f"Imports across {fleet['cold_starts']} cold starts (ranked by p95 self time)",
        "  module                                  in    self p50    p95   cumul p50    p95",
    ]
    for row in fleet["modules"]:
        own, total = row["self_ms"], row["cumulative_ms"]
        lines.append(
            f"  {row['module'][:38]:<38} {row['cold_starts']:>4}  {own['p50']:8.1f} {own['p95']:8.1f}  "
            f"{total['p50']:8.1f} {total['p95']:8.1f}"
        )
    return lines


def render_html(document: dict[str, Any]) -> str:
    """A ``<section>`` for the HTML page; empty for a single cold start."""
    fleet = document.get("fleet")
    if not fleet or fleet["cold_starts"] < 2 or not fleet["modules"]:
        return ""
    head = "".join(
        f"<th>{h}</th>"
        for h in ("module", "cold starts", "self p50 ms", "self p95 ms", "cumulative p50 ms", "p95 ms")
    )
    body = "".join(
        f"<tr><td><code>{escape(row['module'])}</code></td><td class=num>{row['cold_starts']}</td>"
        f"<td class=num>{row['self_ms']['p50']:.1f}</td><td class=num>{row['self_ms']['p95']:.1f}</td>"
        f"<td class=num>{row['cumulative_ms']['p50']:.1f}</td>"
        f"<td class=num>{row['cumulative_ms']['p95']:.1f}</td></tr>"
        for row in fleet["modules"]
    )
    return (
        f"<section><h2>Imports across {fleet['cold_starts']} cold starts</h2>"
        f"<p class=muted>Ranked by p95 self time: the imports that make the slow starts slow.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>"
    )
