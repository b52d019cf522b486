"""Validate a fleet: many cold starts of thousands of imports each, in one run.

    python benchmarks/validate_fleet.py [--traces 100] [--spans 3000]

Writes ``--traces`` cold starts of ``--spans`` spans (the wide shape of validate_100k.py), one
OTLP document per line as the trace-file sink writes them, then runs the whole ``validate``
command (read, judge every trace, per-module p50/p95 across the fleet, JSON result) in a fresh
process and prints its time and peak RSS (VmHWM) per span: the cost of a fleet run, and how it
grows with the number of cold starts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from validate_100k import TID, generate

CHILD = """
import io, sys, time, contextlib
from otel_coldstart.cli import main
started = time.process_time()
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(["validate", sys.argv[1], "--format", "json"])
cpu = time.process_time() - started
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
import json
document = json.loads(out.getvalue())
print(json.dumps({"cpu": cpu, "peak": peak, "code": code, "traces": document["source"]["trace_count"],
                  "modules": len(document["fleet"]["modules"])}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=100)
    parser.add_argument("--spans", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fleet.jsonl"
        line = json.dumps(generate(args.spans, "wide"))
        with open(path, "w") as handle:
            for index in range(args.traces):
                handle.write(line.replace(TID, f"{index + 1:032x}") + "\n")
        size = path.stat().st_size
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True
        )
        wall = time.perf_counter() - started
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    spans = args.traces * args.spans
    print(
        f"{figures['traces']} cold starts x {args.spans} spans = {spans} spans ({size / 1e6:.0f} MB): "
        f"cpu {figures['cpu']:.1f} s (wall {wall:.1f} s), peak RSS {figures['peak'] / 1e6:.0f} MB "
        f"({figures['peak'] / spans:.0f} bytes per span, {figures['peak'] / size:.1f}x the file)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
