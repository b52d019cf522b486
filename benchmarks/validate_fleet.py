"""Validate a fleet: many cold starts of thousands of imports each, in one run.

    python benchmarks/validate_fleet.py [--traces 100] [--spans 3000] [--gzip] [--compare]
    python benchmarks/validate_fleet.py --traces 1000 --spans 3000 --gzip

Writes ``--traces`` cold starts of ``--spans`` spans (the wide shape of validate_100k.py) into a
temporary directory, one OTLP document per line as the trace-file sink writes them (gzip with
``--gzip``: a tenth of the disk, at the cost of inflating while reading). The cold starts differ
(0-999 ms added to each root and main phase), so the representative one is in the middle of the
file, as in a real fleet. Then runs the whole ``validate`` command (read, judge every trace,
per-module p50/p95 across the fleet, the representative's details, JSON result) in a fresh process
and prints its time and peak memory: VmHWM (the child's own peak) and ru_maxrss (from wait4; it
can include the parent's size at the fork, small here).

``--compare`` also runs the way ``validate`` read before (every trace held whole, then summarised:
``sources.load_many``) and checks that both give the same document. It needs ~1.3 kB per span.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from validate_100k import TID, generate

CHILD = """
import io, json, sys, time, contextlib
mode, path = sys.argv[1], sys.argv[2]
started, cpu = time.perf_counter(), time.process_time()
if mode == "new":
    from otel_coldstart.cli import main
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(["validate", path, "--format", "json"])
    document = json.loads(out.getvalue())
else:  # the path validate took before gather.py: every trace held whole
    from otel_coldstart.validate import analysis, recommend, result, roles, sources, targets
    loaded = sources.load_many([path])
    summaries, helpers = roles.split([analysis.summarize(t) for t in loaded.traces])
    chosen = targets.Targets()
    verdicts = targets.judge(summaries, chosen, "p50")
    shown = result.representative(summaries, "p50")
    document = result.build(summaries, verdicts, recommend.recommend(shown), chosen, "defaults", "p50",
                            loaded.description, loaded.fmt, helpers, recommend.left_out(shown))
    document = json.loads(json.dumps(document))
    code = document["exit_code"]
wall, cpu = time.perf_counter() - started, time.process_time() - cpu
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
with open(sys.argv[3], "w") as handle:
    json.dump(document, handle)
print(json.dumps({"cpu": cpu, "wall": wall, "peak": peak, "code": code,
                  "traces": document["source"]["trace_count"], "modules": len(document["fleet"]["modules"]),
                  "representative": document["representative"]["trace_id"]}))
"""


def write_fleet(path: Path, traces: int, spans: int, compress: bool) -> None:
    """``traces`` lines, each the same generated cold start under its own trace id and duration."""
    document = generate(spans, "wide")
    root_end = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["endTimeUnixNano"]
    line = json.dumps(document)
    opener = gzip.open(path, "wt", compresslevel=1) if compress else open(path, "w")  # noqa: SIM115
    with opener as handle:
        for index in range(traces):
            # A different cold start per trace (a permutation of 0-999 ms), the same imports.
            extra_ns = (index * 7919 % 1000) * 1_000_000
            text = line.replace(TID, f"{index + 1:032x}")
            text = text.replace(f'"{root_end}"', f'"{int(root_end) + extra_ns}"')
            handle.write(text + "\n")


def run_child(mode: str, path: Path, out: Path) -> dict:
    """One validation in a fresh process: its own figures, and ru_maxrss from wait4."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(path), str(out)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    printed = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{mode} run failed (exit {child.returncode})")
    figures = json.loads(printed.strip().splitlines()[-1])
    figures["maxrss"] = usage.ru_maxrss * 1024
    figures["elapsed"] = time.perf_counter() - started
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=100)
    parser.add_argument("--spans", type=int, default=3000)
    parser.add_argument("--gzip", action="store_true", help="write the fleet gzip-compressed")
    parser.add_argument("--compare", action="store_true", help="also run the old whole-trace path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("fleet.jsonl.gz" if args.gzip else "fleet.jsonl")
        started = time.perf_counter()
        write_fleet(path, args.traces, args.spans, args.gzip)
        written = time.perf_counter() - started
        size = path.stat().st_size
        spans = args.traces * args.spans
        print(
            f"{args.traces} cold starts x {args.spans} spans = {spans} spans "
            f"({size / 1e6:.0f} MB{' gzip' if args.gzip else ''}, written in {written:.0f} s)"
        )
        documents = {}
        for mode in ["new", "old"] if args.compare else ["new"]:
            out = Path(tmp) / f"{mode}.json"
            figures = run_child(mode, path, out)
            documents[mode] = json.loads(out.read_text())
            label = "validate" if mode == "new" else "old path (traces held whole)"
            print(
                f"  {label}: cpu {figures['cpu']:.1f} s (wall {figures['wall']:.1f} s), "
                f"peak RSS {figures['peak'] / 1e6:.0f} MB (ru_maxrss {figures['maxrss'] / 1e6:.0f} MB, "
                f"{figures['peak'] / spans:.0f} bytes per span); {figures['traces']} judged, "
                f"{figures['modules']} modules in the fleet table, exit {figures['code']}"
            )
    if args.compare:
        same = documents["new"] == documents["old"]
        print(f"  same document from both paths: {'yes' if same else 'NO'}")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
