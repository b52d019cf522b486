"""What the start-up profile (main-thread sampling, and ``sys.monitoring`` on 3.12+) adds to a start-up.

Runs a program that imports a few hundred standard-library modules and runs some code of its own
between them, under the launcher, with ``OTEL_PYTHON_COLDSTART_PROFILE_INTERVAL_MS=0`` (off) and
with the default (10 ms), back to back in rotating order so that machine noise hits both alike.
Reports the medians of the main phase (wall, from the trace) and of the child's CPU time (user +
system, from ``wait4``: less sensitive to a busy machine), their ratios, and the work done after
ready (``coldstart.profile.build_ns``, on the build thread). Usage::

    python benchmarks/startup_profile.py [--rounds 9] [--interval-ms 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from otel_coldstart import conventions as cv  # noqa: E402
from otel_coldstart.cli.demo import launcher_command, traced_env  # noqa: E402
from otel_coldstart.validate import analysis, readers  # noqa: E402

PROGRAM = """
import asyncio, decimal, email.mime.multipart, http.server, json, logging.config, sqlite3
import unittest, urllib.request, xml.etree.ElementTree, argparse, csv, difflib, tarfile, zipfile


def work():
    total = 0
    for i in range(200_000):
        total += i % 7
    return total


work()
import pydoc, inspect, dataclasses, typing, ast, tokenize, statistics
work()
"""


def run_once(script: Path, interval: str, tmp: Path) -> tuple[float, float, float]:
    trace_file = tmp / f"trace-{interval}.jsonl"
    trace_file.unlink(missing_ok=True)
    env = traced_env(str(trace_file), service_name="profile-bench")
    env["OTEL_PYTHON_COLDSTART_PROFILE_INTERVAL_MS"] = interval
    env["OTEL_PYTHON_COLDSTART_SPOOL_DIR"] = str(tmp / "spool")
    process = subprocess.Popen(launcher_command(script), env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"the benchmark program failed with {process.returncode}")
    (trace,) = readers.read_file(str(trace_file))[1]
    summary = analysis.summarize(trace)
    root = trace.root
    build_ns = root.attributes.get(cv.PROFILE_BUILD_NS, 0) if root is not None else 0
    return summary.phases.get("main", 0) / 1e6, (usage.ru_utime + usage.ru_stime) * 1000, build_ns / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--interval-ms", default="10")
    parser.add_argument("--json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        script = tmp / "program.py"
        script.write_text(PROGRAM)
        figures: dict[str, list[tuple[float, float, float]]] = {"off": [], "on": []}
        for round_ in range(args.rounds):
            order = [("off", "0"), ("on", args.interval_ms)]
            for name, interval in order if round_ % 2 == 0 else reversed(order):
                figures[name].append(run_once(script, interval, tmp))
    result = {}
    for name, rows in figures.items():
        result[name] = {
            "main_ms": statistics.median(r[0] for r in rows),
            "cpu_ms": statistics.median(r[1] for r in rows),
            "build_ms": statistics.median(r[2] for r in rows),
        }
    result["ratio"] = {
        "main": result["on"]["main_ms"] / result["off"]["main_ms"],
        "cpu": result["on"]["cpu_ms"] / result["off"]["cpu_ms"],
    }
    print(f"Python {sys.version.split()[0]}, {args.rounds} rounds, interval {args.interval_ms} ms (medians)")
    for name in ("off", "on"):
        row = result[name]
        print(
            f"  profile {name:<4} main phase {row['main_ms']:8.1f} ms   process CPU {row['cpu_ms']:8.1f} ms"
            f"   after ready {row['build_ms']:6.1f} ms"
        )
    print(f"  ratio on/off: main phase {result['ratio']['main']:.3f}, CPU {result['ratio']['cpu']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
