"""A self-contained HTML page: the result plus an icicle of the cold start.

No network: CSS and JavaScript are inline, the span data is embedded JSON (with ``<`` escaped, so
a module name cannot close the script element). The icicle puts time on x and tree depth on y;
spans that overlap at one depth (services on pool threads) get extra lanes. Hover shows a span's
details, a click zooms to it, Escape or "reset zoom" zooms out. Spans narrower than a pixel at
full width are left out (and counted) so that a 100,000-span trace still opens quickly.
"""

from __future__ import annotations

import html
import json
from collections import deque
from functools import cache
from pathlib import Path
from typing import Any

from otel_coldstart import conventions as cv
from otel_coldstart.validate import fleet
from otel_coldstart.validate.analysis import is_import, is_service, module_name, service_name
from otel_coldstart.validate.model import Span, Trace
from otel_coldstart.validate.outputs.report import number, size

MAX_SPANS = 4000
MIN_WIDTH = 1 / 2500  # of the whole cold start


def _kind(span: Span, root: Span) -> str:
    if span is root:
        return "root"
    if is_import(span):
        return "import-failed" if span.status_code == 2 else "import"
    if is_service(span):
        tier = str(span.attributes.get(cv.SERVICE_TIER, ""))
        return f"service-{tier}" if tier in cv.FACTORY_TIERS else "service"
    kind = span.kind
    if kind in (cv.KIND_PHASE, cv.KIND_WAIT, cv.KIND_LAZY_LOAD, cv.KIND_CODE):
        return kind.replace("_", "-")
    return "other"


def _details(span: Span, root: Span) -> dict[str, Any]:
    attrs = span.attributes
    out: dict[str, Any] = {}
    if is_import(span):
        out["module"] = module_name(span)
        for key, label in (
            (cv.MODULE_KIND, "module kind"),
            (cv.CODE_FILE_PATH, "file"),
            (cv.IMPORT_API, "via"),
        ):
            if attrs.get(key) is not None:
                out[label] = str(attrs[key])
        if attrs.get(cv.MODULE_SIZE) is not None:
            out["size"] = size(_number(attrs[cv.MODULE_SIZE]))
    elif is_service(span):
        out["service"] = service_name(span)
        out["tier"] = str(attrs.get(cv.SERVICE_TIER, ""))
        deps = attrs.get(cv.SERVICE_DEPENDENCIES)
        if deps:
            out["depends on"] = ", ".join(str(d) for d in deps) if isinstance(deps, list) else str(deps)
    if attrs.get(cv.MEMORY_RSS_DELTA) is not None:
        out["RSS delta"] = size(_number(attrs[cv.MEMORY_RSS_DELTA]))
    if attrs.get(cv.THREAD_NAME):
        out["thread"] = str(attrs[cv.THREAD_NAME])
    if span.status_code == 2:
        out["error"] = span.status_message or "error"
    return out


def _label(span: Span, root: Span) -> str:
    """What the icicle writes on a span: the boot slab says what it holds."""
    if span.attributes.get(cv.PHASE) == cv.PHASE_BOOT:
        before = span.attributes.get(cv.PREHOOK_MODULE_COUNT)
        modules = f", {before} modules" if before is not None else ""
        return f"boot: interpreter, site-packages, launcher wrapper{modules} (before our hook)"
    if span.attributes.get(cv.PHASE) == cv.PHASE_LAUNCHER:
        return "launcher: configurator, instrumentors"
    return span.name


def _aggregate_details(group: _Aggregate) -> dict[str, Any]:
    largest = sorted(group.members, key=lambda m: m.duration_ns, reverse=True)[:5]
    return {
        "together": f"{group.self_ns / 1e6:.2f} ms in {len(group.members)} spans",
        "largest": ", ".join(f"{m.name} {m.duration_ns / 1e6:.2f} ms" for m in largest),
    }


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def layout(trace: Trace, max_spans: int = MAX_SPANS) -> dict[str, Any]:
    """Spans as rows for the icicle: [start_ms, end_ms, row, name, kind, self_ms, details]."""
    root = trace.root
    assert root is not None
    origin = root.start_ns
    end = root.end_ns
    total = max(1, end - origin)
    kept: list[tuple[Span, int]] = []
    dropped = 0
    # Thousands of tiny spans (each under a pixel) still deserve a picture: lower the bar until a
    # useful number is drawn; zooming in (click) then shows them.
    for threshold in (total * MIN_WIDTH, total * MIN_WIDTH / 10, total * MIN_WIDTH / 100, 0):
        kept, dropped = _keep(root, threshold, max_spans)
        if len(kept) >= min(200, max_spans) or dropped == 0:
            break
    # Lanes: spans at one depth that overlap in time (threads) get a lane each.
    lanes_at: dict[int, list[int]] = {}
    lane_of: dict[int, int] = {}
    for span, depth in sorted(kept, key=lambda item: (item[1], item[0].start_ns)):
        lanes = lanes_at.setdefault(depth, [])
        for index, lane_end in enumerate(lanes):
            if span.start_ns >= lane_end:
                lanes[index] = span.end_ns
                lane_of[id(span)] = index
                break
        else:
            lanes.append(span.end_ns)
            lane_of[id(span)] = len(lanes) - 1
    row_base: dict[int, int] = {}
    row = 0
    for depth in sorted(lanes_at):
        row_base[depth] = row
        row += len(lanes_at[depth])
    rows = []
    for span, depth in kept:
        if isinstance(span, _Aggregate):
            label, kind, details = span.name, "aggregate", _aggregate_details(span)
        else:
            label, kind, details = _label(span, root), _kind(span, root), _details(span, root)
        rows.append(
            [
                round((span.start_ns - origin) / 1e6, 4),
                round((span.end_ns - origin) / 1e6, 4),
                row_base[depth] + lane_of[id(span)],
                label,
                kind,
                round(span.self_ns / 1e6, 4),
                details,
            ]
        )
    return {
        "total_ms": round(total / 1e6, 4),
        "view_end_ms": round(max(total, max((s.end_ns for s, _ in kept), default=end) - origin) / 1e6, 4),
        "rows": row,
        "spans": rows,
        "dropped": dropped,
    }


class _Aggregate:
    """Consecutive siblings too narrow to draw, shown as one block: ``37 small imports``."""

    def __init__(self, members: list[Span]) -> None:
        self.members = members
        self.start_ns = members[0].start_ns
        self.end_ns = max(m.end_ns for m in members)
        self.children: list[Span] = []
        imports = sum(1 for m in members if is_import(m))
        what = "imports" if imports == len(members) else "spans"
        self.name = f"{len(members)} small {what}"
        self.self_ns = sum(m.duration_ns for m in members)


def _keep(root: Span, threshold: float, max_spans: int) -> tuple[list[tuple[Any, int]], int]:
    kept: list[tuple[Any, int]] = []
    dropped = 0
    queue: deque[tuple[Span, int]] = deque([(root, 0)])
    # Breadth first: a child is only drawn if its parent is, so the picture stays a tree.
    planned = 1  # drawn or queued to be drawn: the cap counts both
    while queue:
        span, depth = queue.popleft()
        kept.append((span, depth))
        run: list[Span] = []
        for child in [*span.children, None]:
            small = child is not None and (child.duration_ns < threshold or planned >= max_spans)
            if small:
                run.append(child)  # type: ignore[arg-type]
                continue
            if run:
                dropped += sum(1 + _count_below(m) for m in run)
                group = _Aggregate(run)
                if group.end_ns - group.start_ns >= threshold:
                    kept.append((group, depth + 1))
                run = []
            if child is not None:
                queue.append((child, depth + 1))
                planned += 1
    return kept, dropped


def _count_below(span: Span) -> int:
    return sum(1 for _ in span.walk()) - 1


@cache
def _asset(name: str) -> str:
    # Shipped beside this module (the wheel packages the whole directory); inlined, never linked.
    return (Path(__file__).with_name(name)).read_text(encoding="utf-8")


def _script_json(data: Any) -> str:
    return (
        json.dumps(data, separators=(",", ":"))
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _targets_table(document: dict[str, Any]) -> str:
    rows = []
    for target in document["targets"]:
        status = target["status"]
        css = {"pass": "pass", "fail": "fail"}.get(status, "na")
        measured = (
            "not measured" if target["measured"] is None else number(target["measured"], target["unit"])
        )
        detail = f" <span class=muted>({_e(target['detail'])})</span>" if target["detail"] else ""
        limit = f"{target['limit']:g} {target['unit']}".strip()
        label = status.upper() if status != "not measured" else "N/A"
        rows.append(
            f"<tr><td><span class='badge {css}'>{_e(label)}</span></td><td>{_e(target['label'])}</td>"
            f"<td class=num>{_e(measured)}{detail}</td><td class=num>{_e(limit)}</td></tr>"
        )
    return (
        "<table><thead><tr><th></th><th>target</th><th>measured</th><th>limit</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


_NUM = "\x00num\x00"


def _num(cell: str) -> str:
    """Mark a cell as numeric (right-aligned)."""
    return _NUM + cell


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class=num>{cell[len(_NUM) :]}</td>" if cell.startswith(_NUM) else f"<td>{cell}</td>"
            for cell in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _rich(text: str) -> str:
    """Escaped text with its `code` spans as <code> (advice is written for terminals and Markdown)."""
    parts = _e(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: leave it as it is
        return _e(text)
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


def self_time_table(trace: Trace, n: int = 25) -> list[dict[str, Any]]:
    """Self time summed by span name over the whole trace (a sandwich view's left side), largest
    first, with the spans' total time and how many there were."""
    root = trace.root
    assert root is not None
    by_name: dict[str, list[float]] = {}
    for span in root.walk():
        if span is root or span.kind == cv.KIND_PHASE:
            continue
        row = by_name.setdefault(span.name, [0.0, 0.0, 0])
        row[0] += span.self_ns / 1e6
        row[1] += span.duration_ns / 1e6
        row[2] += 1
    ranked = sorted(by_name.items(), key=lambda item: item[1][0], reverse=True)[:n]
    return [{"name": name, "self_ms": r[0], "total_ms": r[1], "count": int(r[2])} for name, r in ranked]


def _markers(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Targets measured from process start, drawn on the time axis."""
    labels = {"max_cold_start_ms": "cold start target", "max_critical_ready_ms": "critical tier target"}
    return [
        {"label": f"{labels[t['key']]} {t['limit']:g} ms", "ms": float(t["limit"]), "status": t["status"]}
        for t in document["targets"]
        if t["key"] in labels and isinstance(t.get("limit"), (int, float))
    ]


def render(document: dict[str, Any], trace: Trace) -> str:
    shown = document["representative"]
    data = layout(trace)
    data["markers"] = _markers(document)
    count = document["source"]["trace_count"]
    result = document["result"]
    service = shown["service"] or "unknown service"
    sections = []
    badge = f"<span class='badge big {result}'>{_e(result.upper())}</span>"
    judged = f", judged on {_e(document['statistic'])}" if count > 1 else ""
    sections.append(
        f"<header><h1>Cold start of <code>{_e(service)}</code> {badge}</h1><p class=muted>"
        f"{_e(document['source']['description'])} ({_e(document['source']['format'])}) · "
        f"{count} cold start{'s' if count != 1 else ''}{judged} · trace <code>{_e(shown['trace_id'])}</code>"
        f" · targets: {_e(document['targets_origin'])}</p></header>"
    )
    if document.get("notes"):
        sections.append("<section>" + "".join(f"<p>{_e(n)}</p>" for n in document["notes"]) + "</section>")
    if document["recommendations"]:
        items = "".join(
            f"<li><b>{_e(a['kind'])}</b>"
            + (f" <span class=muted>(up to {a['saving_ms']:.0f} ms)</span>" if a.get("saving_ms") else "")
            + f": {_rich(a['message'])}</li>"
            for a in document["recommendations"]
        )
        savings = document.get("savings") or {}
        together = (
            f"<p class=muted>Together: up to {savings['together_ms']:.0f} ms of the cold start"
            + ("; the claims share time, so they are not summed" if savings.get("overlap") else "")
            + "</p>"
            if savings.get("together_ms")
            else ""
        )
        sections.append(f"<section><h2>Recommendations</h2><ul class=advice>{items}</ul>{together}</section>")
    sections.append(f"<section><h2>Targets</h2>{_targets_table(document)}</section>")
    if count > 1 and document["distribution"]:
        table = _table(
            ["metric", "min", "p50", "p95", "max"],
            [
                [_e(key)] + [_num(f"{row[k]:.1f}") for k in ("min", "p50", "p95", "max")]
                for key, row in document["distribution"].items()
            ],
        )
        sections.append(f"<section><h2>Distribution over {count} cold starts</h2>{table}</section>")
    sections.append(fleet.render_html(document))
    phases = " · ".join(
        f"{_e(name)} {duration:.1f} ms ({duration / (shown['cold_start_ms'] or 1):.0%})"
        for name, duration in shown["phases"].items()
    )
    dropped = (
        f" <span class=muted>({data['dropped']} spans narrower than a pixel left out)</span>"
        if data["dropped"]
        else ""
    )
    sections.append(
        f"<section><h2>The cold start: {shown['cold_start_ms']:.1f} ms</h2><p>{phases}{dropped}</p>"
        "<div id=legend></div><div id=toolbar><input id=search type=search placeholder='search spans "
        "(module, service, function)' aria-label='search spans'> <span id=found class=muted></span> "
        "<button id=reset type=button>reset zoom</button>"
        " <span class=muted>hover for details, click a span to zoom, Escape to zoom out</span></div>"
        "<div id=axis></div><div id=icicle></div><div id=tip role=tooltip></div></section>"
    )
    sandwich = self_time_table(trace)
    if sandwich:
        table = _table(
            ["span", "self ms", "total ms", "spans"],
            [
                [
                    f"<code class=q>{_e(r['name'])}</code>",
                    _num(f"{r['self_ms']:.1f}"),
                    _num(f"{r['total_ms']:.1f}"),
                    _num(str(r["count"])),
                ]
                for r in sandwich
            ],
        )
        sections.append(
            "<section><h2>Where the time is spent (self time by name)</h2><p class=muted>Click a name to "
            f"find it in the picture.</p>{table}</section>"
        )
    if shown["slowest_imports"]:
        failed = " <span class='badge fail'>failed</span>"
        table = _table(
            ["module", "self ms", "cumulative ms", "size", "imported by"],
            [
                [
                    f"<code>{_e(r['module'])}</code>{failed if r['failed'] else ''}",
                    _num(f"{r['self_ms']:.1f}"),
                    _num(f"{r['cumulative_ms']:.1f}"),
                    _num(_e(size(r["size_bytes"]))),
                    f"<code>{_e(r['importer'])}</code>",
                ]
                for r in shown["slowest_imports"][:10]
            ],
        )
        sections.append(f"<section><h2>Slowest imports</h2>{table}</section>")
    if shown["services"]:
        table = _table(
            ["service", "tier", "init ms", "RSS delta", "depends on"],
            [
                [
                    f"<code>{_e(r['name'])}</code>",
                    _e(r["tier"]),
                    _num(f"{r['duration_ms']:.1f}"),
                    _num(_e(size(r["memory_delta_bytes"]))),
                    _e(", ".join(r["dependencies"])),
                ]
                for r in shown["services"][:20]
            ],
        )
        sections.append(f"<section><h2>Services</h2>{table}</section>")
    memory = shown["memory"]
    if memory["peak_rss_bytes"] is not None or memory["top_consumers"]:
        consumers = "".join(
            f"<li>{_e(r['kind'])} <code>{_e(r['name'])}</code>: {_e(size(r['rss_delta_bytes']))}</li>"
            for r in memory["top_consumers"]
        )
        snapshots = " → ".join(
            f"{_e(p['label'])} {_e(size(p['rss_bytes']))}" for p in memory["snapshots"][:10]
        )
        sections.append(
            f"<section><h2>Memory</h2><p>peak RSS <b>{_e(size(memory['peak_rss_bytes']))}</b>, at ready "
            f"{_e(size(memory['rss_at_ready_bytes']))}</p><p class=muted>{snapshots}</p>"
            + (f"<p>Largest RSS growth while running:</p><ul>{consumers}</ul>" if consumers else "")
            + "</section>"
        )
    left_out = document.get("left_out") or []
    if left_out:
        items = "".join(
            f"<li><code>{_e(i['module'])}</code> ({i['cumulative_ms']:.0f} ms): {_e(i['reason'])}</li>"
            for i in left_out[:15]
        )
        sections.append(f"<section><h2>Heavy imports not advised, and why</h2><ul>{items}</ul></section>")
    if shown["warnings"]:
        items = "".join(f"<li>{_e(w)}</li>" for w in shown["warnings"])
        sections.append(f"<section><h2>Repairs made while reading the trace</h2><ul>{items}</ul></section>")
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>Cold start of {_e(service)}: {_e(result.upper())}</title><style>{_asset('page.css')}</style>"
        "</head><body>"
        + "".join(sections)
        + f"<script type='application/json' id=coldstart-data>{_script_json(data)}</script>"
        + f"<script>{_asset('page.js')}</script></body></html>\n"
    )
