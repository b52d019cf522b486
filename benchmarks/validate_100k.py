"""Read and judge a 100,000-span cold-start trace: how long the validator takes on enormous input.

    python benchmarks/validate_100k.py [--spans 100000] [--shape wide|deep] [--batch 0] [--repeat 3]

Generates an OTLP JSON trace file (one document on one line, or ``--batch N`` spans per line) with
imports nested a few levels deep under the main phase (``wide``) or one 100,000-deep import chain
(``deep``: the worst case for anything that walks parent links per span). Then, side by side in
fresh processes (so each peak RSS is its own), interleaved and best of ``--repeat``: plain
``json.loads`` of the file, and the validator (read, link, summarise, judge, the JSON result).
Prints the time ratio (CPU time: the machine may be busy) and the peak as a multiple of the file.
The wide shape places submodules loosely, so some lie outside their parent: the clock-skew path
is timed too.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from otel_coldstart.validate import gather, recommend, result, targets
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


def _peak_rss() -> int:
    """VmHWM: this address space's peak (ru_maxrss survives execve: it would be the parent's)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(mode: str, path: str) -> int:
    """One measurement in a fresh process, so that its peak RSS is its own."""
    base = _peak_rss()
    started, cpu = time.perf_counter(), time.process_time()
    if mode == "loads":
        # Every line of the file (one document, or --batch documents), all held as validate did.
        with open(path, "rb") as handle:
            documents = [json.loads(line) for line in handle]
        spans = sum(len(s["spans"]) for d in documents for r in d["resourceSpans"] for s in r["scopeSpans"])
    else:
        # What `validate` does (cli._run_validate): each trace summarised as it completes.
        loaded = gather.gather([path], "p50", targets.Targets())
        summaries = loaded.judged
        verdicts = targets.judge(summaries, targets.Targets())
        shown = loaded.full(result.representative(summaries, "p50"))
        document = result.build(
            summaries,
            verdicts,
            recommend.recommend(shown),
            targets.Targets(),
            "defaults",
            "p50",
            path,
            loaded.fmt,
            shown=shown,
            fleet_section=loaded.fleet,
        )
        spans = sum(s.span_count for s in summaries)
        if mode == "html":
            html_page.render(document, shown.trace)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = _peak_rss()
    print(json.dumps({"wall": wall, "cpu": cpu, "peak": peak, "base": base, "spans": spans}))
    return 0


def _measure(mode: str, path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _write(path: Path, count: int, shape: str, batch: int) -> None:
    document = generate(count, shape)
    with open(path, "w") as handle:
        if not batch:
            handle.write(json.dumps(document) + "\n")
            return
        # One document per line of ``batch`` spans, as an exporter writes batches.
        spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
        for start in range(0, len(spans), batch):
            document["resourceSpans"][0]["scopeSpans"][0]["spans"] = spans[start : start + batch]
            handle.write(json.dumps(document) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--shape", choices=("wide", "deep"), default="wide")
    parser.add_argument("--batch", type=int, default=0, help="spans per line (default 0: one document)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs; the best of each is kept")
    parser.add_argument("--html", action="store_true", help="also render the HTML page (not in the ratio)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(*args.child)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "huge.jsonl"
        _write(path, args.spans, args.shape, args.batch)
        size = path.stat().st_size
        modes = ["loads", "validate"] + (["html"] if args.html else [])
        best: dict[str, dict] = {}
        for _ in range(args.repeat):
            for mode in modes:
                figures = _measure(mode, path)
                kept = best.setdefault(mode, figures)
                for key in ("wall", "cpu", "peak", "base"):
                    kept[key] = min(kept[key], figures[key])
    loads, validate = best["loads"], best["validate"]
    layout = "one document" if not args.batch else f"{args.batch} spans per line"
    mb = 1e6
    print(
        f"{validate['spans']} spans ({args.shape}, {layout}, {size / mb:.0f} MB of OTLP JSON), "
        f"best of {args.repeat}:\n"
        f"  json.loads: cpu {loads['cpu']:.2f} s (wall {loads['wall']:.2f} s), "
        f"peak RSS {loads['peak'] / mb:.0f} MB (+{(loads['peak'] - loads['base']) / mb:.0f} MB)\n"
        f"  validate (read, link, summarise, judge, JSON result): cpu {validate['cpu']:.2f} s "
        f"(wall {validate['wall']:.2f} s), peak RSS {validate['peak'] / mb:.0f} MB "
        f"(+{(validate['peak'] - validate['base']) / mb:.0f} MB over the process before reading)\n"
        f"  ratio: {validate['cpu'] / loads['cpu']:.2f}x json.loads time (goal <= 2); "
        f"peak {validate['peak'] / size:.1f}x the file, "
        f"growth {(validate['peak'] - validate['base']) / size:.1f}x (goal <= 6)"
    )
    if args.html:
        html = best["html"]
        print(f"  with the HTML page: cpu {html['cpu']:.2f} s, peak RSS {html['peak'] / mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
