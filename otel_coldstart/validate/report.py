"""The human report for a terminal: plain text that reads without colour."""

from __future__ import annotations

from otel_coldstart.validate.analysis import Summary
from otel_coldstart.validate.targets import Verdict


def _ms(ns: float) -> str:
    return f"{ns / 1e6:8.1f} ms"


def _size(n: int | None) -> str:
    if n is None:
        return "      -"
    if n >= 1_000_000:
        return f"{n / 1e6:5.1f} MB"
    return f"{n / 1e3:5.1f} kB"


def _value(verdict: Verdict) -> str:
    if verdict.measured is None:
        return "not measured"
    unit = f" {verdict.unit}" if verdict.unit else ""
    return f"{verdict.measured:.1f}{unit} (limit {verdict.limit:g}{unit})"


def render(summary: Summary, verdicts: list[Verdict], advice: list[str], targets_origin: str) -> str:
    trace = summary.trace
    lines = [
        f"Cold start of {trace.service_name or 'unknown service'} — trace {trace.trace_id} ({trace.source})",
        "",
        f"Targets ({targets_origin})",
    ]
    for verdict in verdicts:
        mark = {"pass": "PASS", "fail": "FAIL"}.get(verdict.status, " n/a")
        lines.append(f"  {mark}  {verdict.label:<18} {_value(verdict)}")
    total = summary.cold_start_ns or 1
    lines += ["", f"Cold start {_ms(summary.cold_start_ns).strip()}"]
    for phase, duration in summary.phases.items():
        lines.append(f"  {phase:<10} {_ms(duration)}  {duration / total:5.1%}")
    recorded = summary.imports_recorded
    filtered = f", {recorded} kept as spans" if recorded != summary.import_count else ""
    lines += [
        "",
        f"Imports: {summary.import_count} modules{filtered}, {_ms(summary.top_level_import_ns).strip()} "
        f"at top level, bundle {_size(summary.bundle_bytes).strip()}",
    ]
    if summary.imports:
        lines.append("  slowest (self time)                      self    cumulative     size")
        for figure in summary.slowest_imports(10, by="self"):
            flag = "  FAILED" if figure.failed else ""
            lines.append(
                f"  {figure.module[:36]:<36} {_ms(figure.self_ns)} {_ms(figure.cumulative_ns)}  "
                f"{_size(figure.size)}{flag}"
            )
    if summary.services:
        lines += [
            "",
            f"Services: {len(summary.services)}, mean init {_ms(summary.mean_service_init_ns or 0).strip()}",
        ]
        for service in sorted(summary.services, key=lambda s: s.duration_ns, reverse=True)[:10]:
            flag = "  FAILED" if service.failed else ""
            lines.append(f"  {service.name[:30]:<30} {service.tier:<10} {_ms(service.duration_ns)}{flag}")
    if trace.warnings:
        lines += ["", "Repairs made while reading the trace:"] + [f"  - {w}" for w in trace.warnings]
    if advice:
        lines += ["", "Recommendations:"] + [f"  - {a}" for a in advice]
    failed = [v.label for v in verdicts if v.failed]
    lines += ["", f"Result: {'FAIL (' + ', '.join(failed) + ')' if failed else 'PASS'}"]
    return "\n".join(lines)
