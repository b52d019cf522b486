"""``otel-coldstart diff BASE CANDIDATE``: what got slower, bigger, new or gone between two sets of
cold starts.

Spans are matched by what they are, not by id: an import by its module name, a service init by
its service name, any other span (phases, tier phases, waits, lazy loads) by the names on its path
from the root (the nearest six ancestors). Several spans with one key in one trace are added up
(a service initialised twice). With several traces on a side, each figure is the chosen statistic
(default p50) over the traces that have it.

``--max-regression`` makes it a gate on what the user controls: the cold start, and any single
import or service init, that grew by more than 10 % *of the base cold start*: a 2 ms import going
to 4 ms is +100 % of itself but noise for the build, while one import adding a tenth of the
start-up is what the gate is for. ``50ms`` is the same in absolute terms; ``10%,50ms`` fails only
when both are exceeded. Waits, lazy loads and phases are listed but never gate: a ``wait`` span
that grew while the cold start got faster is the parallel pool doing its work, not a regression.

Changes below a noise floor are not listed: a time that moved by less than ``NOISE_FLOOR_MS`` and
``NOISE_FLOOR_SHARE`` of the base cold start, a file that grew by less than ``SIZE_FLOOR_BYTES``,
an RSS delta that grew by less than ``RSS_FLOOR_BYTES`` (what rounds to "1.7 -> 1.7 MB").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_coldstart import conventions as cv
from otel_coldstart.validate import metrics as metric_table
from otel_coldstart.validate import stats
from otel_coldstart.validate.analysis import Summary, is_import, is_service, module_name, service_name
from otel_coldstart.validate.model import Span

SCHEMA = "otel-coldstart/diff"
SCHEMA_VERSION = 1
PATH_DEPTH = 6
#: A time change is listed when it exceeds both this many ms and this share of the base cold start.
NOISE_FLOOR_MS = 1.0
NOISE_FLOOR_SHARE = 0.005
#: Size changes below these are not "bigger": a byte-level edit, or RSS noise below 0.1 MB.
SIZE_FLOOR_BYTES = 1_000
RSS_FLOOR_BYTES = 100_000
#: The span kinds a regression gate judges one by one (the user's imports and services).
GATED_KINDS = ("import", "service")
_THRESHOLD = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|ms|s)\s*$")


class ThresholdError(ValueError):
    """A --max-regression value that is not ``N%``, ``Nms`` or ``Ns`` (or two of them)."""


@dataclass(frozen=True)
class Threshold:
    percent: float | None = None
    ms: float | None = None

    def describe(self) -> str:
        parts = ([f"{self.percent:g}% of the base cold start"] if self.percent is not None else []) + (
            [f"{self.ms:g} ms"] if self.ms is not None else []
        )
        return " and ".join(parts)

    def exceeded(self, delta_ms: float, base_total_ms: float) -> bool:
        checks = []
        if self.percent is not None:
            checks.append(delta_ms > base_total_ms * self.percent / 100)
        if self.ms is not None:
            checks.append(delta_ms > self.ms)
        return bool(checks) and all(checks)


def parse_threshold(text: str) -> Threshold:
    percent = ms = None
    for part in str(text).split(","):
        match = _THRESHOLD.match(part)
        if not match:
            raise ThresholdError(f"--max-regression {text!r}: use e.g. 10%, 50ms, 0.2s or 10%,50ms")
        value, unit = float(match.group(1)), match.group(2)
        if unit == "%":
            percent = value
        else:
            ms = value * (1000 if unit == "s" else 1)
    return Threshold(percent, ms)


@dataclass
class _Collected:
    kind: str
    label: str
    where: str
    durations: list[float] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)
    memory: list[float] = field(default_factory=list)


def _key(span: Span, path_of: dict[int, tuple[str, ...]]) -> tuple[tuple[str, str], str, str]:
    """(key, kind, where) of a span; ``path_of`` memoises bounded name paths."""
    parent = span.parent
    parent_path = path_of.get(id(parent), ()) if parent is not None else ()
    path = (*parent_path, span.name)[-PATH_DEPTH:]
    path_of[id(span)] = path
    where = parent.name if parent is not None else ""
    if is_import(span):
        return ("import", module_name(span)), "import", where
    if is_service(span):
        return ("service", service_name(span)), "service", where
    return ("span", " > ".join(path)), span.kind or "span", where


def _collect(summaries: Sequence[Summary]) -> dict[tuple[str, str], _Collected]:
    items: dict[tuple[str, str], _Collected] = {}
    for summary in summaries:
        root = summary.trace.root
        if root is None:
            continue
        per_trace: dict[tuple[str, str], list[float]] = {}
        path_of: dict[int, tuple[str, ...]] = {id(root): ()}
        for span in root.walk():
            if span is root:
                continue
            key, kind, where = _key(span, path_of)
            item = items.get(key)
            if item is None:
                item = items[key] = _Collected(kind, key[1], where)
            totals = per_trace.setdefault(key, [0.0, 0.0, 0.0, 0.0])
            totals[0] += span.duration_ns / 1e6
            size = span.attributes.get(cv.MODULE_SIZE)
            if isinstance(size, (int, float)) and not isinstance(size, bool):
                totals[1] += size
                totals[3] = 1
            rss = span.attributes.get(cv.MEMORY_RSS_DELTA)
            if isinstance(rss, (int, float)) and not isinstance(rss, bool):
                totals[2] += rss
        for key, (duration, size, rss, has_size) in per_trace.items():
            item = items[key]
            item.durations.append(duration)
            if has_size:
                item.sizes.append(size)
            if rss:
                item.memory.append(rss)
    return items


def _metrics(summaries: Sequence[Summary], statistic: str) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for metric in metric_table.METRICS:
        found = metric_table.values(metric, list(summaries))
        out[metric.key] = stats.compute(found, statistic) if found else None
    return out


def _stat(values: list[float], statistic: str) -> float | None:
    return stats.compute(values, statistic) if values else None


def _change(base: float | None, candidate: float | None) -> tuple[float | None, float | None]:
    if base is None or candidate is None:
        return None, None
    delta = candidate - base
    return delta, (delta / base * 100 if base else None)


def compare(
    base: Sequence[Summary],
    candidate: Sequence[Summary],
    statistic: str = stats.DEFAULT_STATISTIC,
    threshold: Threshold | None = None,
) -> dict[str, Any]:
    """The diff as a plain document (schema ``otel-coldstart/diff`` v1)."""
    statistic = stats.check_statistic(statistic)
    base_metrics, cand_metrics = _metrics(base, statistic), _metrics(candidate, statistic)
    metrics = []
    for name in base_metrics:
        delta, percent = _change(base_metrics[name], cand_metrics[name])
        metrics.append(
            {
                "name": name,
                "base": base_metrics[name],
                "candidate": cand_metrics[name],
                "delta": delta,
                "delta_pct": percent,
            }
        )
    base_items, cand_items = _collect(base), _collect(candidate)
    rows: list[dict[str, Any]] = []
    for key in dict.fromkeys([*base_items, *cand_items]):
        b, c = base_items.get(key), cand_items.get(key)
        b_ms = _stat(b.durations, statistic) if b else None
        c_ms = _stat(c.durations, statistic) if c else None
        delta, percent = _change(b_ms, c_ms)
        b_size = _stat(b.sizes, statistic) if b else None
        c_size = _stat(c.sizes, statistic) if c else None
        b_rss = _stat(b.memory, statistic) if b else None
        c_rss = _stat(c.memory, statistic) if c else None
        status = "new" if b is None else "gone" if c is None else "changed"
        rows.append(
            {
                "kind": (c or b).kind,  # type: ignore[union-attr]
                "name": key[1],
                "where": (c or b).where,  # type: ignore[union-attr]
                "status": status,
                "base_ms": b_ms,
                "candidate_ms": c_ms,
                "delta_ms": delta if status == "changed" else (c_ms if status == "new" else -(b_ms or 0)),
                "delta_pct": percent,
                "base_size_bytes": b_size,
                "candidate_size_bytes": c_size,
                "size_delta_bytes": None if b_size is None or c_size is None else c_size - b_size,
                "base_rss_delta_bytes": b_rss,
                "candidate_rss_delta_bytes": c_rss,
            }
        )
    base_total = base_metrics["cold_start_ms"] or 0.0
    regressions = []
    if threshold is not None:
        total_delta = (cand_metrics["cold_start_ms"] or 0.0) - base_total
        if threshold.exceeded(total_delta, base_total):
            regressions.append({"kind": "cold start", "name": "cold start", "delta_ms": total_delta})
        for row in rows:
            gated = row["status"] != "gone" and row["kind"] in GATED_KINDS
            if gated and threshold.exceeded(row["delta_ms"] or 0.0, base_total):
                regressions.append({"kind": row["kind"], "name": row["name"], "delta_ms": row["delta_ms"]})
    floor_ms = max(NOISE_FLOOR_MS, NOISE_FLOOR_SHARE * base_total)
    changed = [r for r in rows if r["status"] == "changed"]
    moved = [r for r in changed if abs(r["delta_ms"] or 0) >= floor_ms]
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "statistic": statistic,
        "base_traces": len(base),
        "candidate_traces": len(candidate),
        "metrics": metrics,
        "noise_floor_ms": round(floor_ms, 3),
        "slower": sorted((r for r in moved if (r["delta_ms"] or 0) > 0), key=lambda r: -r["delta_ms"]),
        "faster": sorted((r for r in moved if (r["delta_ms"] or 0) < 0), key=lambda r: r["delta_ms"]),
        "bigger": sorted(
            (r for r in changed if file_grew(r) or rss_growth(r) >= RSS_FLOOR_BYTES),
            key=lambda r: -max(r["size_delta_bytes"] or 0, rss_growth(r)),
        ),
        "new": sorted((r for r in rows if r["status"] == "new"), key=lambda r: -(r["candidate_ms"] or 0)),
        "gone": sorted((r for r in rows if r["status"] == "gone"), key=lambda r: -(r["base_ms"] or 0)),
        "threshold": None if threshold is None else threshold.describe(),
        "regressions": regressions,
        "result": "fail" if regressions else "pass",
        "exit_code": 1 if regressions else 0,
    }


def rss_growth(row: dict[str, Any]) -> float:
    if row["base_rss_delta_bytes"] is None or row["candidate_rss_delta_bytes"] is None:
        return 0.0
    return float(row["candidate_rss_delta_bytes"] - row["base_rss_delta_bytes"])


def file_grew(row: dict[str, Any]) -> bool:
    return (row["size_delta_bytes"] or 0) >= SIZE_FLOOR_BYTES
