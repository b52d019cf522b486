"""``otel-coldstart diff`` for people: the terminal text and the Markdown of a compare document."""

from __future__ import annotations

from typing import Any

from otel_coldstart.validate.compare import RSS_FLOOR_BYTES, file_grew, rss_growth
from otel_coldstart.validate.outputs.report import more, shorten


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _fmt_delta(row: dict[str, Any]) -> str:
    delta = row["delta_ms"]
    text = "-" if delta is None else f"{delta:+.1f} ms"
    if row.get("delta_pct") is not None:
        text += f" ({row['delta_pct']:+.0f}%)"
    return text


def _metric_value(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    unit = {"ms": "ms", "mb": "MB"}.get(name.rsplit("_", 1)[-1])
    return f"{value:.0f}" if unit is None else f"{value:.1f} {unit}"


def render(document: dict[str, Any], top: int = 15) -> str:
    lines = [
        f"Cold-start diff: {document['base_traces']} base trace(s) vs "
        f"{document['candidate_traces']} candidate "
        f"trace(s), {document['statistic']} of each",
        "",
        f"  {'metric':<22}{'base':>14}{'candidate':>14}  change",
    ]
    for metric in document["metrics"]:
        if metric["base"] is None and metric["candidate"] is None:
            continue
        change = "-"
        if metric["delta"] is not None:
            change = _metric_value(metric["name"], metric["delta"])
            change = ("+" if metric["delta"] >= 0 else "") + change
            if metric["delta_pct"] is not None:
                change += f" ({metric['delta_pct']:+.1f}%)"
        lines.append(
            f"  {metric['name']:<22}{_metric_value(metric['name'], metric['base']):>14}"
            f"{_metric_value(metric['name'], metric['candidate']):>14}  {change}"
        )
    sections = (
        (
            "Slower",
            "slower",
            lambda r: f"{_fmt_ms(r['base_ms'])} -> {_fmt_ms(r['candidate_ms'])}  {_fmt_delta(r)}",
        ),
        (
            "Faster",
            "faster",
            lambda r: f"{_fmt_ms(r['base_ms'])} -> {_fmt_ms(r['candidate_ms'])}  {_fmt_delta(r)}",
        ),
        ("Bigger", "bigger", _bigger_text),
        ("New", "new", lambda r: f"{_fmt_ms(r['candidate_ms'])}  (under {r['where']})"),
        ("Gone", "gone", lambda r: f"{_fmt_ms(r['base_ms'])}  (was under {r['where']})"),
    )
    for title, key, text in sections:
        rows = document[key]
        if not rows:
            continue
        lines += ["", f"{title}:"]
        for row in rows[:top]:
            lines.append(f"  {row['kind']:<8} {shorten(row['name'], 44):<44} {text(row)}")
        lines += more(len(rows), top)
    lines += ["", f"(changes under {document['noise_floor_ms']:.1f} ms are not listed)"]
    if document["threshold"] is not None:
        lines += [
            "",
            f"Gate: no import, service or cold start regressed by more than {document['threshold']}",
        ]
        for item in document["regressions"]:
            lines.append(f"  REGRESSION  {item['kind']} {item['name']}: {item['delta_ms']:+.1f} ms")
        lines.append(f"Result: {'FAIL' if document['regressions'] else 'PASS'}")
    return "\n".join(lines)


def _bigger_text(row: dict[str, Any]) -> str:
    parts = []
    if file_grew(row):
        parts.append(f"file {row['base_size_bytes'] / 1e3:.1f} -> {row['candidate_size_bytes'] / 1e3:.1f} kB")
    if rss_growth(row) >= RSS_FLOOR_BYTES:
        parts.append(
            f"RSS delta {row['base_rss_delta_bytes'] / 1e6:.1f} -> "
            f"{row['candidate_rss_delta_bytes'] / 1e6:.1f} MB"
        )
    return ", ".join(parts)


def render_markdown(document: dict[str, Any], top: int = 15) -> str:
    icon = "✅" if document["result"] == "pass" else "❌"
    lines = [
        f"## {icon} Cold-start diff ({document['statistic']}; {document['base_traces']} base vs "
        f"{document['candidate_traces']} candidate traces)",
        "",
        "| metric | base | candidate | change |",
        "|---|---:|---:|---:|",
    ]
    for metric in document["metrics"]:
        if metric["base"] is None and metric["candidate"] is None:
            continue
        pct = "" if metric["delta_pct"] is None else f" ({metric['delta_pct']:+.1f}%)"
        delta = "-" if metric["delta"] is None else f"{metric['delta']:+.1f}{pct}"
        lines.append(
            f"| {metric['name']} | {_metric_value(metric['name'], metric['base'])} | "
            f"{_metric_value(metric['name'], metric['candidate'])} | {delta} |"
        )
    for title, key in (("Slower", "slower"), ("New", "new"), ("Gone", "gone")):
        rows = document[key][:top]
        if rows:
            lines += [
                "",
                f"### {title}",
                "",
                "| kind | name | base | candidate | change |",
                "|---|---|---:|---:|---:|",
            ]
            for row in rows:
                name = str(row["name"]).replace("|", "\\|")
                lines.append(
                    f"| {row['kind']} | `{name}` | {_fmt_ms(row['base_ms'])} | "
                    f"{_fmt_ms(row['candidate_ms'])} | "
                    f"{_fmt_delta(row)} |"
                )
    if document["threshold"] is not None:
        lines += ["", f"Gate: no regression above {document['threshold']}: **{document['result'].upper()}**"]
        lines += [f"- {r['kind']} `{r['name']}`: {r['delta_ms']:+.1f} ms" for r in document["regressions"]]
    return "\n".join(lines) + "\n"
