"""AWS Lambda: what our distro adds to init, and how long it holds the runtime before a freeze.

A function on ``awslambdaric`` runs against the loopback Runtime API of the tests (it SIGSTOPs the
runtime when it asks for the next event after answering one) with a real OTLP/HTTP receiver.
Each round runs plain ``python -m awslambdaric`` and ``opentelemetry-instrument python -m
awslambdaric`` side by side (alternating order), and reads:

- init: process start -> the runtime's first ``/invocation/next`` (the ratio ours / plain);
- hold: the first answer -> the next request, i.e. the time the runtime is held before the sandbox
  may freeze (plain: the runtime loop only; ours: delivering the cold start);
- delivered: the first ``/invocation/next`` (end of init) -> the cold-start root arriving at the
  receiver (polled every 2 ms).

Usage::

    python benchmarks/lambda_freeze.py [--rounds 5] [--sleep-ms 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from lambda_runtime_api import RuntimeAPI  # noqa: E402
from otlp_receiver import HttpReceiver  # noqa: E402

HANDLER = """\
import decimal, json, sqlite3, time

def fn(event, context):
    time.sleep(event["sleep_ms"] / 1000)
    return {"sum": str(decimal.Decimal("0.1") + decimal.Decimal("0.2"))}
"""


def run_once(work: Path, instrumented: bool, sleep_ms: float) -> dict[str, float]:
    (work / "handler.py").write_text(HANDLER)
    receiver = HttpReceiver()
    api = RuntimeAPI()
    arrived: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() and not arrived:
            if any(span.name == "coldstart" for span in receiver.spans()):
                arrived.append(time.time())
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    env = {
        "PATH": "/usr/bin:/bin",
        **api.env(),
        **receiver.env(),
        "OTEL_PYTHON_DISTRO": "otel_coldstart",
        "OTEL_PYTHON_CONFIGURATOR": "otel_coldstart",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PYTHON_COLDSTART_SPOOL_DIR": str(work / "spool"),
    }
    command = [sys.executable, "-m", "awslambdaric", "handler.fn"]
    if instrumented:
        command.insert(0, str(Path(sys.executable).with_name("opentelemetry-instrument")))
    started = time.time()
    process = subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    api.pid = process.pid
    try:
        api.add_event({"sleep_ms": sleep_ms})
        if not api.wait_frozen(1, timeout=120):
            raise RuntimeError("the runtime never asked for a second event")
    finally:
        stop.set()
        api.close()
        receiver.close()
        process.wait(30)
    result = {
        "init_s": api.nexts[0] - started,
        "hold_s": api.freezes[0].at - api.answers[0].at,
    }
    if arrived:
        result["delivered_s"] = arrived[0] - api.nexts[0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sleep-ms", type=float, default=0.0, help="the first invocation's duration")
    parser.add_argument("--json")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"plain": [], "ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(args.rounds):
            order = ["plain", "ours"] if number % 2 == 0 else ["ours", "plain"]
            for variant in order:
                work = Path(tmp) / f"{variant}-{number}"
                work.mkdir()
                runs[variant].append(run_once(work, variant == "ours", args.sleep_ms))
    median = {
        variant: {key: statistics.median(r[key] for r in results if key in r) for key in results[0]}
        for variant, results in runs.items()
    }
    plain, ours = median["plain"], median["ours"]
    print(f"{args.rounds} rounds, first invocation {args.sleep_ms:g} ms (medians)")
    print(
        f"  init      plain {plain['init_s'] * 1000:7.0f} ms   ours {ours['init_s'] * 1000:7.0f} ms"
        f"   ratio {ours['init_s'] / plain['init_s']:.2f}"
    )
    print(
        f"  hold      plain {plain['hold_s'] * 1000:7.1f} ms   ours {ours['hold_s'] * 1000:7.1f} ms"
        "   (answer -> next request: the runtime held before a freeze)"
    )
    if "delivered_s" in ours:
        print(f"  delivered end of init -> cold start at the receiver: {ours['delivered_s'] * 1000:.0f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "median": median}, indent=2))


if __name__ == "__main__":
    main()
