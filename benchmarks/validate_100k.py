"""Read and judge a 100,000-span cold-start trace: how long the validator takes on enormous input.

    python benchmarks/validate_100k.py [--spans 100000] [--shape wide|deep]

Generates an OTLP JSON trace file (one line, as the trace-file sink writes it) with imports nested
a few levels deep under the main phase (``wide``) or one 100,000-deep import chain (``deep``: the
worst case for anything that walks parent links per span), then times read (parse + link) and
judge (summary, targets, recommendations, the JSON result) and the HTML page separately. The wide
shape places submodules loosely, so some lie outside their parent: the clock-skew path is timed too.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from otel_coldstart.validate import analysis, readers, recommend, result, targets
from otel_coldstart.validate.outputs import html_page

T0 = 1_767_225_600_000_000_000
TID = "5" * 32


def _attr(key: str, value: object) -> dict:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _span(span_id: int, parent: int | None, name: str, start: int, end: int, attrs: list) -> dict:
    span = {
        "traceId": TID,
        "spanId": f"{span_id:016x}",
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(T0 + start),
        "endTimeUnixNano": str(T0 + end),
        "attributes": attrs,
    }
    if parent is not None:
        span["parentSpanId"] = f"{parent:016x}"
    return span


def generate(count: int, shape: str) -> dict:
    rng = random.Random(5)
    total = count * 10_000  # 10 µs per span on average
    spans = [
        _span(
            1,
            None,
            "coldstart",
            0,
            total,
            [_attr("coldstart.kind", "root"), _attr("coldstart.memory.peak_rss", 90_000_000)],
        ),
        _span(
            2,
            1,
            "coldstart.boot",
            0,
            1000,
            [_attr("coldstart.kind", "phase"), _attr("coldstart.phase", "boot")],
        ),
        _span(
            3,
            1,
            "coldstart.main",
            1000,
            total,
            [_attr("coldstart.kind", "phase"), _attr("coldstart.phase", "main")],
        ),
    ]
    next_id = 4
    if shape == "deep":
        parent, start, end = 3, 1000, total
        while next_id < count + 1:
            start, end = start + 1, end - 1
            spans.append(_import(next_id, parent, start, end, rng))
            parent = next_id
            next_id += 1
    else:
        # Packages of ~50 modules, each with submodules: the shape a big application has.
        cursor = 1000
        stack: list[tuple[int, int]] = []
        while next_id < count + 1:
            depth = rng.randint(0, 4)
            parent = 3 if not stack or depth == 0 else stack[min(depth, len(stack)) - 1][0]
            duration = rng.randint(20_000, 400_000) >> (2 * depth)  # submodules are quicker
            spans.append(_import(next_id, parent, cursor, cursor + duration, rng))
            stack = [*stack[:depth], (next_id, cursor)][:5]
            cursor += duration // 3
            next_id += 1
        # Stretch the root and main phase over what the imports took.
        for span in spans[:3:2]:
            span["endTimeUnixNano"] = str(T0 + cursor + 400_000)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attr("service.name", "huge")]},
                "scopeSpans": [{"scope": {"name": "otel_coldstart"}, "spans": spans}],
            }
        ]
    }


def _import(span_id: int, parent: int, start: int, end: int, rng: random.Random) -> dict:
    name = f"pkg{span_id % 500}.mod{span_id}"
    return _span(
        span_id,
        parent,
        f"import {name}",
        start,
        end,
        [
            _attr("coldstart.kind", "import"),
            _attr("coldstart.module.name", name),
            _attr("coldstart.module.size", rng.randint(100, 50_000)),
            _attr("code.file.path", f"/venv/lib/python3.11/site-packages/{name.replace('.', '/')}.py"),
        ],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--shape", choices=("wide", "deep"), default="wide")
    args = parser.parse_args()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))  # nothing here may need more
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "huge.jsonl"
        path.write_text(json.dumps(generate(args.spans, args.shape)) + "\n")
        size_mb = path.stat().st_size / 1e6
        started = time.perf_counter()
        fmt, traces = readers.read_file(str(path))
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        summaries = [analysis.summarize(t) for t in traces]
        verdicts = targets.judge(summaries, targets.Targets())
        advice = recommend.recommend(summaries[0])
        document = result.build(
            summaries, verdicts, advice, targets.Targets(), "defaults", "p50", str(path), fmt
        )
        judge_s = time.perf_counter() - started
        started = time.perf_counter()
        page = html_page.render(document, summaries[0].trace)
        html_s = time.perf_counter() - started
    spans = summaries[0].span_count
    print(
        f"{spans} spans ({args.shape}, {size_mb:.0f} MB of OTLP JSON): read {read_s:.2f} s, "
        f"judge {judge_s:.2f} s, HTML {html_s:.2f} s ({len(page) / 1e6:.1f} MB); "
        f"total {read_s + judge_s + html_s:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
