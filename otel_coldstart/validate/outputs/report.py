"""The report for a terminal: plain text that reads without colour; colour only on a TTY.

Colour follows the common conventions: never when ``NO_COLOR`` is set (https://no-color.org) or
``TERM=dumb``, never when stdout is not a terminal, unless forced with ``--color always``.
"""

from __future__ import annotations

import os
from typing import Any, TextIO

from otel_coldstart import conventions as cv
from otel_coldstart.validate import faas, fleet, stats


def use_colour(stream: TextIO, mode: str = "auto") -> bool:
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR", "") != "" or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def red(self, text: str) -> str:
        return self._wrap("31;1", text)

    def green(self, text: str) -> str:
        return self._wrap("32;1", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:8.1f} ms"


def size(n: float | None) -> str:
    if n is None:
        return "-"
    if abs(n) >= 1_000_000:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.1f} kB"


def shorten(name: str, width: int) -> str:
    """``name`` in at most ``width`` characters, never cut inside a word: whole segments of a span
    path (``a > b > c``) or a dotted module name are dropped from the middle, then ``…`` stands for
    them (``coldstart.main > … > wait db``). A name without segments is cut at its last space that fits."""
    if len(name) <= width:
        return name
    separator = " > " if " > " in name else "." if "." in name else ""
    if separator:
        parts = name.split(separator)
        head, tail = parts[:1], parts[1:]
        while tail:
            candidate = separator.join([*head, "…", *tail])
            if len(candidate) <= width:
                return candidate
            tail = tail[1:]
        if len(parts[-1]) + 2 <= width:
            return "…" + separator.strip() + parts[-1] if separator == "." else "… > " + parts[-1]
    cut = name[: width - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut + "…"


def more(total: int, shown: int, what: str = "") -> list[str]:
    """The line that says how many rows a list left out (never a silent cut)."""
    if total <= shown:
        return []
    return [f"  … +{total - shown} more{' ' + what if what else ''}"]


def number(value: float, unit: str) -> str:
    if unit == "":
        return f"{value:.0f}"
    return f"{value:.1f} {unit}"


def _target_value(target: dict[str, Any]) -> str:
    if target["measured"] is None:
        return "not measured"
    unit = target["unit"]
    text = f"{number(target['measured'], unit)} (limit {target['limit']:g}{' ' + unit if unit else ''})"
    if target["detail"]:
        text += f" — {target['detail']}"
    return text


def render(document: dict[str, Any], style: Style | None = None) -> str:
    style = style or Style(False)
    shown = document["representative"]
    count = document["source"]["trace_count"]
    statistic = document["statistic"]
    lines: list[str] = []
    if count == 1:
        head = f"Cold start of {shown['service'] or 'unknown service'} — trace {shown['trace_id']}"
    else:
        head = (
            f"{count} cold starts of {shown['service'] or 'unknown service'}, judged on {statistic}; "
            f"details of trace {shown['trace_id']} (nearest the {statistic})"
        )
    lines += [style.bold(head), *(f"  {note}" for note in document.get("notes", ())), ""]
    lines.append(f"Targets ({document['targets_origin']})")
    for target in document["targets"]:
        mark = {"pass": style.green("PASS"), "fail": style.red("FAIL")}.get(
            target["status"], style.dim(" n/a")
        )
        label = target["label"] + (f" [{statistic}]" if count > 1 and target["measured"] is not None else "")
        lines.append(f"  {mark}  {label:<26} {_target_value(target)}")

    distribution = document["distribution"]
    if count > 1 and distribution:
        lines += [
            "",
            f"Distribution over {count} cold starts" + "          min       p50       p95       max",
        ]
        for key, row in distribution.items():
            spark = stats.sparkline(row.get("values") or [])
            lines.append(
                f"  {key:<24}{row['min']:10.1f}{row['p50']:10.1f}{row['p95']:10.1f}{row['max']:10.1f}"
                f"  {spark}"
            )

    total = shown["cold_start_ms"] or 1
    lines += [
        "",
        style.bold(f"Cold start {shown['cold_start_ms']:.1f} ms")
        + f" (ready: {shown['ready_trigger'] or '?'}"
        + (f", {shown['process_role']}" if shown.get("process_role", "service") != "service" else "")
        + ")",
    ]
    for phase, duration in shown["phases"].items():
        lines.append(f"  {phase:<22} {_ms(duration)}  {duration / total:6.1%}")
    for tier, duration in shown["tiers"].items():
        lines.append(f"  tier {tier:<17} {_ms(duration)}")
    if shown["critical_ready_ms"] is not None:
        lines.append(f"  critical tier ready at {shown['critical_ready_ms']:.1f} ms after process start")
    if shown.get("lambda"):
        lines.append("  " + faas.describe(faas.LambdaSplit(**shown["lambda"])))

    main = shown.get("main_phase")
    if main and main["duration_ms"]:
        share = main["explained_ms"] / main["duration_ms"]
        unseen = main["duration_ms"] - main["explained_ms"]
        lines.append(
            f"  main phase explained     {share:6.1%}  (imports {main['imports_ms']:.1f} ms, code between "
            f"imports {main['code_ms']:.1f} ms sampled, {unseen:.1f} ms not seen)"
        )

    imports = shown["imports"]
    kept = f", {imports['recorded']} kept as spans" if imports["recorded"] != imports["count"] else ""
    lines += [
        "",
        style.bold(f"Imports: {imports['count']} modules{kept}")
        + f", {imports['top_level_ms']:.1f} ms at top level",
        f"  bundle {size(imports['bundle_bytes'])}: third-party and application Python code the main phase "
        f"loaded (not counted: standard library {size(imports.get('stdlib_bytes'))}, native extensions "
        f"{size(imports.get('native_bytes'))})",
    ]
    for title, key in (
        ("slowest (self time)", "slowest_imports"),
        ("heaviest (cumulative)", "heaviest_imports"),
    ):
        rows = shown.get(key) or []
        if not rows:
            continue
        lines.append(style.dim(f"  {title:<36}          self    cumulative      size"))
        for row in rows[:10]:
            flag = style.red("  FAILED") if row["failed"] else ""
            lines.append(
                f"  {shorten(row['module'], 36):<36} {_ms(row['self_ms'])} {_ms(row['cumulative_ms'])}  "
                f"{size(row['size_bytes']):>8}{flag}"
            )
        lines += more(imports["recorded"], min(10, len(rows)), "imports")
    failed_imports = imports["failed"]
    if failed_imports:
        lines.append(
            style.dim(
                f"  failed imports: {len(failed_imports)} (the importing code caught each ImportError): "
            )
            + ", ".join(failed_imports[:12])
            + (f" … +{len(failed_imports) - 12} more" if len(failed_imports) > 12 else "")
        )
    if main and main.get("profile_skipped") == cv.PROFILE_SKIPPED_EXIT_BUDGET:
        lines += [
            "",
            style.bold("Code between imports")
            + ": not read: the cold start ended at exit, and reading its samples did not fit the exit"
            " budget (OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT); the raw copy went first",
        ]
    if main and main["code"]:
        lines += ["", style.bold("Code between imports") + " (the main thread, sampled)"]
        for row in main["code"][:6]:
            hot = f"  hot: {', '.join(row['hot'])}" if row["hot"] else ""
            lines.append(f"  {shorten(row['name'], 40):<40} {_ms(row['duration_ms'])}{hot}")
        lines += more(len(main["code"]), 6, "spans")
    services = shown["services"]
    if services:
        # Count and mean over every service: the list itself holds only the slowest 50.
        count, mean = shown["service_count"], shown["mean_service_init_ms"]
        total_services = count
        lines += ["", style.bold(f"Services: {count}") + f", mean init {mean:.1f} ms"]
        for row in services[:10]:
            flag = style.red("  FAILED") if row["failed"] else ""
            memory = (
                f"  {size(row['memory_delta_bytes']):>9}" if row["memory_delta_bytes"] is not None else ""
            )
            lines.append(
                f"  {shorten(row['name'], 30):<30} {row['tier']:<10} {_ms(row['duration_ms'])}{memory}{flag}"
            )
        lines += more(total_services, min(10, len(services)), "services")

    memory = shown["memory"]
    if memory["peak_rss_bytes"] is not None or memory["top_consumers"]:
        lines += [
            "",
            style.bold("Memory")
            + f": peak RSS {size(memory['peak_rss_bytes'])}, at ready {size(memory['rss_at_ready_bytes'])}",
        ]
        for point in memory["snapshots"][:8]:
            label = shorten(point["label"], 24)
            lines.append(f"  {label:<24} +{point['offset_ms']:8.1f} ms  RSS {size(point['rss_bytes'])}")
        lines += more(len(memory["snapshots"]), 8, "snapshots")
        if memory["top_consumers"]:
            lines.append(style.dim("  largest RSS growth while running"))
            for row in memory["top_consumers"]:
                lines.append(
                    f"  {row['kind']:<8} {shorten(row['name'], 40):<40} {size(row['rss_delta_bytes']):>9}"
                )

    lines += fleet.render_text(document)
    if shown["warnings"]:
        lines += ["", style.yellow("Repairs made while reading the trace:")]
        lines += [f"  - {w}" for w in shown["warnings"]]
    if document["recommendations"]:
        lines += ["", style.bold("Recommendations:")]
        lines += [f"  - {a['message']}" for a in document["recommendations"]]
        savings = document.get("savings") or {}
        if savings.get("together_ms"):
            together = savings["together_ms"]
            lines.append(
                f"  Together: up to {together:.0f} ms ({together / total:.0%} of the cold start)"
                + (
                    f"; the claims share time, so they do not add up to {savings['sum_ms']:.0f} ms"
                    if savings["overlap"]
                    else ""
                )
            )
    left_out = document.get("left_out") or []
    if left_out:
        lines += ["", style.bold("Not advised") + " (heavy imports left out, and why):"]
        for item in left_out[:8]:
            lines.append(f"  - {item['module']} ({item['cumulative_ms']:.0f} ms): {item['reason']}")
        lines += more(len(left_out), 8)
    failed = [t["label"] for t in document["targets"] if t["status"] == "fail"]
    verdict = style.red("FAIL (" + ", ".join(failed) + ")") if failed else style.green("PASS")
    lines += ["", f"Result: {verdict}"]
    return "\n".join(lines)
