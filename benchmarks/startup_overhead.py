"""Time-to-ready of the demo app: plain vs our distro vs the stock opentelemetry-distro, in one run.

Each round runs the three variants back to back (in rotating order), so machine noise hits them
alike; the figures that matter are the ratios of medians. Usage::

    python benchmarks/startup_overhead.py [--rounds 15] [--json out.json]

Time-to-ready: from just before the process is spawned to the moment the demo calls
``mark_ready()`` (it prints ``time.time_ns()`` then). Wall: until the process has exited.
Max RSS: the child's peak resident set, from ``wait4``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from private_spool import isolate  # noqa: E402

from otel_coldstart.cli.demo import demo_app, launcher_command  # noqa: E402

COMMON = {
    "OTEL_SERVICE_NAME": "coldstart-bench",
    # Same export configuration for both distros: OTLP over HTTP to a closed local port.
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
    "DEMO_PRINT_READY_NS": "1",
}


def variants(trace_file: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    app = demo_app()
    # Dropping every OTEL_* variable must not send the spool to the user's ~/.cache.
    base = isolate(
        {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, os.path.dirname(trace_file)
    )
    plain = dict(base, DEMO_PRINT_READY_NS="1")
    ours = dict(
        base,
        **COMMON,
        OTEL_PYTHON_DISTRO="otel_coldstart",
        OTEL_PYTHON_CONFIGURATOR="otel_coldstart",
        OTEL_PYTHON_COLDSTART_TRACE_FILE=trace_file,
    )
    stock = dict(
        base,
        **COMMON,
        OTEL_PYTHON_DISTRO="distro",
        OTEL_PYTHON_CONFIGURATOR="configurator",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="coldstart_imports,coldstart_services",
    )
    # The launcher alone (no distro, configurator or instrumentor loaded): the floor any distro
    # started by opentelemetry-instrument pays, to tell our cost from the launcher's.
    bare = dict(
        base,
        **COMMON,
        OTEL_PYTHON_DISTRO="no-such-distro",
        OTEL_PYTHON_CONFIGURATOR="no-such",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="*",
    )
    return {
        "plain": ([sys.executable, str(app)], plain),
        "launcher only": (launcher_command(app), bare),
        "otel-coldstart": (launcher_command(app), ours),
        "stock distro": (launcher_command(app), stock),
    }


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    start = time.time_ns()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    end = time.time_ns()
    out = proc.stdout.read().decode()
    proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    ready = next(
        (int(line.split("=", 1)[1]) for line in out.splitlines() if line.startswith("ready_ns=")), None
    )
    if ready is None:
        raise RuntimeError(f"{command} did not report ready (exit {proc.returncode})")
    return (ready - start) / 1e6, (end - start) / 1e6, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    try:
        import opentelemetry.distro  # noqa: F401
    except ImportError:
        print("the stock opentelemetry-distro is needed for the comparison: pip install -e '.[dev]'")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        runs = variants(str(Path(tmp) / "trace.jsonl"))
        names = list(runs)
        samples: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
        for name in names:  # warm the page cache and .pyc files; not counted
            measure(*runs[name])
        for round_no in range(args.rounds):
            shift = round_no % len(names)
            order = names[shift:] + names[:shift]
            for name in order:
                samples[name].append(measure(*runs[name]))
    figures = {}
    for name in names:
        ready, wall, rss = zip(*samples[name], strict=False)
        figures[name] = {
            "ready_ms_median": statistics.median(ready),
            "wall_ms_median": statistics.median(wall),
            "max_rss_mb_median": statistics.median(rss),
        }
    plain = figures["plain"]
    print(f"demo app time-to-ready, {args.rounds} interleaved rounds, medians ({os.cpu_count()} cores)")
    print(f"{'variant':<16}{'ready ms':>10}{'x plain':>9}{'wall ms':>10}{'max RSS MB':>12}{'+MB':>7}")
    for name, fig in figures.items():
        fig["ready_ratio_vs_plain"] = fig["ready_ms_median"] / plain["ready_ms_median"]
        fig["rss_delta_mb"] = fig["max_rss_mb_median"] - plain["max_rss_mb_median"]
        print(
            f"{name:<16}{fig['ready_ms_median']:>10.1f}{fig['ready_ratio_vs_plain']:>9.2f}"
            f"{fig['wall_ms_median']:>10.1f}{fig['max_rss_mb_median']:>12.1f}{fig['rss_delta_mb']:>7.1f}"
        )
    ours, stock, bare = figures["otel-coldstart"], figures["stock distro"], figures["launcher only"]
    print(
        f"on top of the bare launcher: ours +{ours['ready_ms_median'] - bare['ready_ms_median']:.1f} ms, "
        f"stock +{stock['ready_ms_median'] - bare['ready_ms_median']:.1f} ms; "
        f"ours/stock time-to-ready {ours['ready_ms_median'] / stock['ready_ms_median']:.2f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
