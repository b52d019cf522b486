"""Exit delay with an unreachable collector: ours vs the stock opentelemetry-distro vs plain python.

The exit delay is the time from the app's last statement (it prints ``time.time_ns()``) to the
moment its process has exited, as its parent sees it. Two collector states: ``down`` (nothing
listens on the port: connection refused) and ``hang`` (a listener accepts connections and never
answers). Each round runs every variant in every state, in rotating order, so machine noise hits
them alike; read the ratios of medians. Usage::

    python benchmarks/exit_delay.py [--rounds 5] [--protocol http/protobuf|grpc] [--json out.json]

Both distros get the same export configuration (OTLP traces and metrics to the dead endpoint).
The app is a script, so for us the cold start ends at exit: the SDK set-up, span building and the
export attempt all happen inside the exit budget (OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT, 0.5 s), and
the unsent trace is spooled. The stock distro waits for its exporters' retries.
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
sys.path.insert(0, str(ROOT / "tests"))

from otlp_receiver import _HangListener, free_port  # noqa: E402
from private_spool import isolate  # noqa: E402

from otel_coldstart.cli.demo import launcher_command  # noqa: E402
from otel_coldstart.deliver import spool as spool_module  # noqa: E402

#: A script that does one traced piece of work, so that the stock distro has a span to send too.
APP = """\
import decimal, json, logging, sqlite3, time
from xml.etree import ElementTree
from opentelemetry import trace
with trace.get_tracer("app").start_as_current_span("work"):
    sqlite3.connect(":memory:").execute("select 1")
print(f"last_ns={time.time_ns()}", flush=True)
"""


def variants(
    app: Path, endpoint: str, protocol: str, spool: str
) -> dict[str, tuple[list[str], dict[str, str]]]:
    base = isolate({k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, os.path.dirname(spool))
    common = dict(
        base,
        OTEL_SERVICE_NAME="coldstart-bench",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
    )
    ours = dict(
        common,
        OTEL_PYTHON_DISTRO="otel_coldstart",
        OTEL_PYTHON_CONFIGURATOR="otel_coldstart",
        OTEL_PYTHON_COLDSTART_SPOOL_DIR=spool,
    )
    stock = dict(
        common,
        OTEL_PYTHON_DISTRO="distro",
        OTEL_PYTHON_CONFIGURATOR="configurator",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="coldstart_imports,coldstart_services",
    )
    return {
        "plain": ([sys.executable, str(app)], base),
        "otel-coldstart": (launcher_command(app), ours),
        "stock distro": (launcher_command(app), stock),
    }


def exit_delay(command: list[str], env: dict[str, str]) -> float:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out, _ = proc.communicate(timeout=120)
    ended = time.time_ns()
    if proc.returncode != 0 or "last_ns=" not in out:
        raise RuntimeError(f"{command} failed with status {proc.returncode}")
    last = int(out.split("last_ns=")[1].split()[0])
    return (ended - last) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--protocol", choices=["http/protobuf", "grpc"], default="http/protobuf")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()

    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "app.py"
        app.write_text(APP)
        down_port = free_port()  # closed: connection refused
        hang_port = free_port()
        hang = _HangListener(hang_port)
        try:
            states = {"down": down_port, "hang": hang_port}
            for round_ in range(args.rounds):
                for state, port in states.items():
                    runs = list(
                        variants(app, f"http://127.0.0.1:{port}", args.protocol, f"{tmp}/spool").items()
                    )
                    shift = round_ % len(runs)
                    for name, (command, env) in runs[shift:] + runs[:shift]:
                        delay = exit_delay(command, env)
                        results.setdefault(state, {}).setdefault(name, []).append(delay)
                print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        finally:
            hang.close()
        spooled = len(spool_module.list_entries(str(Path(tmp, "spool"))))

    print(
        f"\nExit delay after the app's last statement, collector unreachable ({args.protocol}), "
        f"median of {args.rounds} rounds"
    )
    header = ("collector", "plain", "otel-coldstart", "stock distro", "stock / ours", "ours - plain")
    print(f"{header[0]:<10}{header[1]:>10}{header[2]:>16}{header[3]:>14}{header[4]:>14}{header[5]:>14}")
    summary: dict[str, dict[str, float]] = {}
    for state, by_variant in results.items():
        med = {name: statistics.median(values) for name, values in by_variant.items()}
        summary[state] = med
        ours, stock, plain = med["otel-coldstart"], med["stock distro"], med["plain"]
        print(
            f"{state:<10}{plain:>9.3f}s{ours:>15.3f}s{stock:>13.3f}s"
            f"{stock / ours:>13.1f}x{ours - plain:>13.3f}s"
        )
    worst = max(max(results[s]["otel-coldstart"]) for s in results)
    print(f"\nslowest otel-coldstart exit in any round: {worst:.3f} s; spool files written: {spooled}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"protocol": args.protocol, "raw": results, "median": summary}, indent=2)
        )


if __name__ == "__main__":
    main()
