"""The validation result as one plain document: what ``--format json`` prints and every other
output (terminal, Markdown, JUnit, HTML) renders.

Schema ``otel-coldstart/validate``, version 1. Stable: fields are only added within a version;
renaming or removing one bumps ``schema_version``. Times are milliseconds (``*_ms``), sizes bytes
(``*_bytes``) except the target values, which are in each target's ``unit``.

```
{
  "schema": "otel-coldstart/validate", "schema_version": 1, "tool_version": "0.1.0",
  "result": "pass" | "fail", "exit_code": 0 | 1,
  "source": {"description": str, "format": str, "trace_count": int},
  "statistic": "p50", "targets_origin": str,
  "targets": [{"key", "label", "status": "pass"|"fail"|"not measured", "measured": float|null,
               "limit", "unit", "statistic", "values": [float, ...], "detail": str}],
  "distribution": {"cold_start_ms" | "boot_ms" | "peak_memory_mb" | "bundle_mb" | "imports" |
                   "mean_service_init_ms" | "critical_ready_ms":
                   {"n", "min", "p50", "p95", "max", "mean", "values": [per trace, oldest first]}},
  "fleet": {"cold_starts": int, "modules": [{"module", "cold_starts", "self_ms": {"p50", "p95"},
            "cumulative_ms": {"p50", "p95"}}]},   # top 20 imports by p95 self time (fleet.py)
  "traces": [{"trace_id", "service", "start_unix_ms", "cold_start_ms", "peak_memory_mb", "result",
              "process_role", "ready_trigger"}],   # the judged ones (service and workers)
  "helpers": [{"trace_id", "process_role", "pid", "ready_trigger", "cold_start_ms"}],  # not judged
  "notes": [str],   # which roles were judged; cold starts that ended by exit, timeout or signal
  "representative": {   # the trace whose cold start is nearest the judged statistic
    "trace_id", "service", "span_count", "ready_trigger", "process_role", "cold_start_ms",
    "phases": {"boot": ms, "launcher": ms, "main": ms}, "tiers": {"critical": ms, ...},
    "critical_ready_ms": float|null,
    "lambda": null | {"init_type", "init_ns", "before_snapshot_ns", "first_invocation_ns", "gap_ns",
                      "proactive"},   # AWS Lambda: init vs first invocation (validate/faas.py)
    "imports": {"count", "recorded", "top_level_ms", "failed": [str],
                "bundle_bytes",          # third-party and application Python code the main phase loaded
                "stdlib_bytes", "native_bytes"},   # beside the bundle, not in it
    "slowest_imports": [{"module", "self_ms", "cumulative_ms", "size_bytes", "importer", "failed",
                         "memory_delta_bytes"}],   # by self time
    "heaviest_imports": [same fields],            # by cumulative time (with what they import)
    "service_count": int, "mean_service_init_ms": float|null,   # over every service of the trace
    "services": [{"name", "tier", "duration_ms", "memory_delta_bytes", "failed", "dependencies",
                  "threaded"}],   # the 50 slowest
    "main_phase": null | {"duration_ms", "explained_ms", "imports_ms", "code_ms",
                          "code": [{"name", "duration_ms", "hot": [str]}],
                          "profile_skipped": str | None},
    "memory": {"peak_rss_bytes", "rss_at_ready_bytes",
               "snapshots": [{"label", "offset_ms", "rss_bytes", "peak_rss_bytes"}],
               "top_consumers": [{"kind": "service"|"import", "name", "rss_delta_bytes"}]},
    "warnings": [str]},
  "recommendations": [{"kind", "subject", "message", "saving_ms": float|null}],
  "savings": {"sum_ms", "together_ms", "overlap": bool},  # claims sharing time are not summed
  "left_out": [{"module", "cumulative_ms", "reason"}]    # heavy imports not advised, and why
}
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from otel_coldstart import conventions as cv
from otel_coldstart.validate import faas, fleet, metrics, roles, stats
from otel_coldstart.validate.analysis import ImportFigure, Summary
from otel_coldstart.validate.attribution import LeftOut
from otel_coldstart.validate.recommend import Advice, claimed
from otel_coldstart.validate.targets import Targets, Verdict, judge

SCHEMA = "otel-coldstart/validate"
SCHEMA_VERSION = 1
MS = 1e6


def _ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / MS, 3)


def representative(summaries: Sequence[Summary], statistic: str) -> Summary:
    """The cold start nearest the judged statistic of cold-start times (the median one for p50)."""
    values = [s.cold_start_ns for s in summaries]
    target = stats.compute(values, statistic)
    return min(summaries, key=lambda s: (abs(s.cold_start_ns - target), s.cold_start_ns))


def _distribution(summaries: Sequence[Summary]) -> dict[str, dict[str, float]]:
    out = {}
    for metric in metrics.METRICS:
        found = metrics.values(metric, list(summaries))
        if found:
            row: dict[str, Any] = {k: round(v, 3) for k, v in stats.Distribution.of(found).as_dict().items()}
            row["values"] = [round(v, 3) for v in found]
            out[metric.key] = row
    return out


def _import_row(f: ImportFigure) -> dict[str, Any]:
    return {
        "module": f.module,
        "self_ms": _ms(f.self_ns),
        "cumulative_ms": _ms(f.cumulative_ns),
        "size_bytes": f.size,
        "importer": f.importer,
        "failed": f.failed,
        "memory_delta_bytes": f.memory_delta,
    }


def _main_phase_document(summary: Summary) -> dict[str, Any] | None:
    main = summary.main_phase
    if main is None:
        return None
    return {
        "duration_ms": _ms(main.duration_ns),
        "explained_ms": _ms(main.explained_ns),
        "imports_ms": _ms(main.import_ns),
        "code_ms": _ms(main.code_ns),
        "code": [{"name": name, "duration_ms": _ms(ns), "hot": hot} for name, ns, hot in main.code[:10]],
        "profile_skipped": _profile_skipped(summary),
    }


def _profile_skipped(summary: Summary) -> str | None:
    root = summary.trace.root
    reason = root.attributes.get(cv.PROFILE_SKIPPED) if root is not None else None
    return str(reason) if reason else None


def _summary_document(summary: Summary) -> dict[str, Any]:
    trace = summary.trace
    return {
        "trace_id": trace.trace_id,
        "service": trace.service_name,
        "span_count": summary.span_count,
        "ready_trigger": summary.ready_trigger,
        "process_role": roles.role_of(summary),
        "cold_start_ms": _ms(summary.cold_start_ns),
        "phases": {name: _ms(ns) for name, ns in summary.phases.items()},
        "tiers": {name: _ms(ns) for name, ns in summary.tiers.items()},
        "critical_ready_ms": _ms(summary.critical_ready_ns),
        "lambda": faas.as_document(trace),
        "imports": {
            "count": summary.import_count,
            "recorded": summary.imports_recorded,
            "top_level_ms": _ms(summary.top_level_import_ns),
            "bundle_bytes": summary.bundle_bytes,
            "stdlib_bytes": summary.stdlib_bytes,
            "native_bytes": summary.native_bytes,
            "failed": sorted(set(summary.failed_imports)),
        },
        "slowest_imports": [_import_row(f) for f in summary.slowest_imports(15, by="self")],
        "heaviest_imports": [_import_row(f) for f in summary.slowest_imports(15, by="cumulative")],
        "service_count": len(summary.services),
        "mean_service_init_ms": _ms(summary.mean_service_init_ns),
        "main_phase": _main_phase_document(summary),
        "services": [
            {
                "name": s.name,
                "tier": s.tier,
                "duration_ms": _ms(s.duration_ns),
                "memory_delta_bytes": s.memory_delta,
                "failed": s.failed,
                "dependencies": list(s.dependencies),
                "threaded": s.threaded,
            }
            for s in sorted(summary.services, key=lambda s: s.duration_ns, reverse=True)[:50]
        ],
        "memory": {
            "peak_rss_bytes": summary.peak_memory_bytes,
            "rss_at_ready_bytes": summary.rss_at_ready_bytes,
            "snapshots": [
                {
                    "label": p.label,
                    "offset_ms": _ms(p.offset_ns),
                    "rss_bytes": p.rss,
                    "peak_rss_bytes": p.peak_rss,
                }
                for p in summary.memory_points
            ],
            "top_consumers": [
                {"kind": c.kind, "name": c.name, "rss_delta_bytes": c.rss_delta}
                for c in summary.memory_consumers(10)
            ],
        },
        "warnings": list(trace.warnings),
    }


def verdict_document(verdict: Verdict) -> dict[str, Any]:
    return {
        "key": verdict.key,
        "label": verdict.label,
        "status": verdict.status,
        "measured": None if verdict.measured is None else round(verdict.measured, 3),
        "limit": verdict.limit,
        "unit": verdict.unit,
        "statistic": verdict.statistic,
        "values": [round(v, 3) for v in verdict.values],
        "detail": verdict.detail,
    }


def build(
    summaries: Sequence[Summary],
    verdicts: Sequence[Verdict],
    advice: Sequence[Advice],
    targets: Targets,
    targets_origin: str,
    statistic: str,
    source_description: str,
    source_format: str,
    helpers: Sequence[Summary] = (),
    left_out: Sequence[LeftOut] = (),
    shown: Summary | None = None,
    fleet_section: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The document for the judged ``summaries``; ``helpers`` (roles.split) are listed apart.

    ``shown``: the representative cold start with its spans, when ``summaries`` holds it compacted
    (``gather``); by default it is picked from ``summaries``. ``fleet_section``: the ``fleet``
    table when it was built already (``gather``), else built from ``summaries``."""
    from otel_coldstart.version import __version__

    failed = any(v.failed for v in verdicts)
    if shown is None:
        shown = representative(summaries, statistic)
    total, together, overlap = claimed(list(advice))
    traces = []
    for summary in summaries:
        own = judge(summary, targets, statistic)
        root = summary.trace.root
        traces.append(
            {
                "trace_id": summary.trace.trace_id,
                "service": summary.trace.service_name,
                "start_unix_ms": None if root is None else root.start_ns // 1_000_000,
                "cold_start_ms": _ms(summary.cold_start_ns),
                "peak_memory_mb": None
                if summary.peak_memory_bytes is None
                else round(summary.peak_memory_bytes / 1e6, 3),
                "result": "fail" if any(v.failed for v in own) else "pass",
                "process_role": roles.role_of(summary),
                "ready_trigger": summary.ready_trigger,
            }
        )
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "tool_version": __version__,
        "result": "fail" if failed else "pass",
        "exit_code": 1 if failed else 0,
        "source": {"description": source_description, "format": source_format, "trace_count": len(summaries)},
        "statistic": statistic,
        "targets_origin": targets_origin,
        "targets": [verdict_document(v) for v in verdicts],
        "distribution": _distribution(summaries),
        "fleet": fleet.section(summaries) if fleet_section is None else fleet_section,
        "traces": traces,
        "representative": _summary_document(shown),
        "helpers": roles.helper_documents(helpers),
        "notes": roles.notes(summaries, helpers),
        "recommendations": [
            {"kind": a.kind, "subject": a.subject, "message": a.message, "saving_ms": _ms(a.saving_ns)}
            for a in advice
        ],
        "savings": {"sum_ms": _ms(total), "together_ms": _ms(together), "overlap": overlap},
        "left_out": [
            {
                "module": item.figure.module,
                "cumulative_ms": _ms(item.figure.cumulative_ns),
                "reason": item.reason,
            }
            for item in left_out
        ],
    }
