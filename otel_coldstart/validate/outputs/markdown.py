"""Markdown for a CI step summary (``$GITHUB_STEP_SUMMARY``) or a pull-request comment."""

from __future__ import annotations

from typing import Any

from otel_coldstart.validate.outputs.report import number, size


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(document: dict[str, Any]) -> str:
    shown = document["representative"]
    count = document["source"]["trace_count"]
    icon = "✅" if document["result"] == "pass" else "❌"
    service = shown["service"] or "unknown service"
    lines = [
        f"## {icon} Cold start of `{_cell(service)}`: {document['result'].upper()}",
        "",
        f"Source: {_cell(document['source']['description'])} ({_cell(document['source']['format'])}), "
        f"{count} cold start{'s' if count != 1 else ''}"
        + (f", judged on **{document['statistic']}**" if count > 1 else "")
        + f"; targets from {_cell(document['targets_origin'])}.",
        "",
        *(f"> {_cell(note)}\n" for note in document.get("notes", ())),
        "| | target | measured | limit |",
        "|---|---|---:|---:|",
    ]
    for target in document["targets"]:
        mark = {"pass": "✅", "fail": "❌"}.get(target["status"], "·")
        measured = (
            "not measured" if target["measured"] is None else number(target["measured"], target["unit"])
        )
        if target["detail"]:
            measured += f" ({_cell(target['detail'])})"
        limit = f"{target['limit']:g} {target['unit']}".strip()
        lines.append(f"| {mark} | {_cell(target['label'])} | {measured} | {limit} |")
    if count > 1 and document["distribution"]:
        lines += [
            "",
            f"### Distribution over {count} cold starts",
            "",
            "| metric | min | p50 | p95 | max |",
            "|---|---:|---:|---:|---:|",
        ]
        for key, row in document["distribution"].items():
            lines.append(
                f"| {key} | {row['min']:.1f} | {row['p50']:.1f} | {row['p95']:.1f} | {row['max']:.1f} |"
            )
    total = shown["cold_start_ms"] or 1
    lines += [
        "",
        f"### Where the {shown['cold_start_ms']:.1f} ms go (trace `{shown['trace_id']}`)",
        "",
        "| phase | ms | share |",
        "|---|---:|---:|",
    ]
    for phase, duration in shown["phases"].items():
        lines.append(f"| {phase} | {duration:.1f} | {duration / total:.1%} |")
    if shown["slowest_imports"]:
        lines += [
            "",
            "<details><summary>Slowest imports</summary>",
            "",
            "| module | self ms | cumulative ms | size |",
            "|---|---:|---:|---:|",
        ]
        for row in shown["slowest_imports"][:10]:
            lines.append(
                f"| `{_cell(row['module'])}`{' (failed)' if row['failed'] else ''} | {row['self_ms']:.1f} | "
                f"{row['cumulative_ms']:.1f} | {size(row['size_bytes'])} |"
            )
        lines += ["", "</details>"]
    if shown["services"]:
        lines += ["", "| service | tier | init ms | RSS delta |", "|---|---|---:|---:|"]
        for row in shown["services"][:10]:
            lines.append(
                f"| `{_cell(row['name'])}` | {_cell(row['tier'])} | {row['duration_ms']:.1f} | "
                f"{size(row['memory_delta_bytes'])} |"
            )
    memory = shown["memory"]
    if memory["top_consumers"]:
        lines += ["", f"Memory: peak RSS {size(memory['peak_rss_bytes'])}; largest growth:"]
        lines += [
            f"- {row['kind']} `{_cell(row['name'])}`: {size(row['rss_delta_bytes'])}"
            for row in memory["top_consumers"][:5]
        ]
    if document["recommendations"]:
        lines += ["", "### Recommendations", ""]
        lines += [f"- {_cell(a['message'])}" for a in document["recommendations"]]
    if shown["warnings"]:
        lines += [
            "",
            "Repairs made while reading the trace: " + "; ".join(_cell(w) for w in shown["warnings"]),
        ]
    return "\n".join(lines) + "\n"
