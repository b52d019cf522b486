"""Soak: hundreds of traced process exits while the collector cycles through up, down, hanging,
503 and 413, with CPU hogs running. Every cold start must arrive exactly once, or be quarantined
(413: kept on disk, counted), never lost. Usage::

    python benchmarks/delivery_soak.py [--processes 300] [--parallel 8] [--hogs 2] [--cycle 1.5]
                                       [--imports 0] [--protocol http]

Each process is a small app whose cold start ends at exit (the hardest case: everything happens in
the exit budget), under its own service name, so that its root span identifies it at the receiver.
After the last exit the collector comes up for good and ``otel-coldstart flush`` runs until the
spool is empty; then every cold start is accounted for:

- delivered: its root span reached the collector (at exit, or later through flush);
- spooled: waiting in the spool when the last process exited (delivered later by flush);
- quarantined: refused with 413 and set aside (``*.rejected``), counted, not retried;
- left in the spool: flush could not send it (kept on disk, not lost);
- lost: none of the above; duplicated: some span of it arrived twice.

Exit delay is the time from the app's last statement to its process's end, as its parent sees it.
Load alone lengthens it (a starved interpreter tears down slowly), so each traced run is paired
with a run of the same app without us (no ``OTEL_*``), in the same worker, right before or after
it (alternating), under the same load. **Exit delay over plain** is, per pair, the traced run's exit
delay minus the plain run's; its p50 and p99 are what the exit budget
(``OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT`` plus a small constant) is held against.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from otlp_receiver import RECEIVERS, Receiver  # noqa: E402
from private_spool import traced_to  # noqa: E402

from otel_coldstart.cli.demo import launcher_command  # noqa: E402
from otel_coldstart.deliver import spool  # noqa: E402

APP = """\
import decimal, json, sqlite3, time
{imports}
print(f"last_ns={{time.time_ns()}}", flush=True)
"""
#: The collector's states, in the order the cycler visits them; ``reject`` answers 413 to all.
STATES = ("up", "down", "hang", "error", "up", "reject")


def make_app(directory: Path, modules: int) -> Path:
    lines = []
    if modules:
        package = directory / "soakpkg"
        package.mkdir()
        (package / "__init__.py").write_text("".join(f"from . import m{i}\n" for i in range(modules)))
        for i in range(modules):
            (package / f"m{i}.py").write_text("X = 1\n")
        lines.append(f"import sys; sys.path.insert(0, {str(directory)!r}); import soakpkg")
    app = directory / "app.py"
    app.write_text(APP.format(imports="\n".join(lines)))
    return app


def switch(receiver: Receiver, mode: str) -> None:
    """Set the receiver's mode; the port may still be held for a moment by the previous listener."""
    for _ in range(50):
        try:
            receiver.set_mode(mode)
            return
        except OSError:
            receiver.mode = "down"
            time.sleep(0.1)


def cycle(receiver: Receiver, period: float, stop: threading.Event, log: list[tuple[float, str]]) -> None:
    for state in itertools.cycle(STATES):
        receiver.max_body = 0 if state == "reject" else None
        switch(receiver, "up" if state == "reject" else state)
        log.append((time.monotonic(), state))
        if stop.wait(period):
            return


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def quarantined_services(directory: Path) -> set[str]:
    names = set()
    for path in spool.quarantined(str(directory)):
        with open(path, "rb") as handle:
            text = handle.read()
        try:
            names.add(json.loads(text)["resource"]["service.name"])  # a raw copy
        except (ValueError, KeyError, TypeError):
            for line in text.splitlines():  # OTLP JSON lines
                for resource in json.loads(line).get("resourceSpans", []):
                    for kv in resource.get("resource", {}).get("attributes", []):
                        if kv["key"] == "service.name":
                            names.add(kv["value"]["stringValue"])
    return names


def spooled_services(directory: Path) -> set[str]:
    """Services whose cold start is still in the spool (kept, not lost: a later flush sends it)."""
    names = set()
    for entry in spool.list_entries(str(directory)):
        try:
            if entry.kind == spool.RAW:
                names.add(spool.read_raw(entry.path)["resource"]["service.name"])
            else:
                for document in spool.read_documents(entry.path):
                    for resource in document.get("resourceSpans", []):
                        for kv in resource.get("resource", {}).get("attributes", []):
                            if kv["key"] == "service.name":
                                names.add(kv["value"]["stringValue"])
        except (OSError, ValueError, KeyError):
            continue
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=300)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--hogs", type=int, default=2, help="CPU-bound busy loops beside the apps")
    parser.add_argument("--cycle", type=float, default=1.5, help="seconds per collector state")
    parser.add_argument("--imports", type=int, default=0, help="extra modules each app imports")
    parser.add_argument("--protocol", choices=sorted(RECEIVERS), default="http")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    if args.protocol != "http":
        print("note: 413 is an HTTP status; with grpc the 'reject' state is 'up'", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        app = make_app(work, args.imports)
        spool_dir = work / "spool"
        hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(args.hogs)]
        receiver = RECEIVERS[args.protocol]("up")
        stop = threading.Event()
        states: list[tuple[float, str]] = []
        cycler = threading.Thread(target=cycle, args=(receiver, args.cycle, stop, states), daemon=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        common = traced_to(receiver.env(), tmp)
        delays: list[float] = []
        plain_delays: list[float] = []
        over_plain: list[float] = []
        failures: list[str] = []

        def exit_delay(command: list[str], env: dict[str, str], label: str) -> float | None:
            completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
            ended = time.time_ns()
            if completed.returncode != 0 or "last_ns=" not in completed.stdout:
                failures.append(f"{label}: status {completed.returncode}: {completed.stderr[-300:]}")
                return None
            return (ended - int(completed.stdout.split("last_ns=")[1].split()[0])) / 1e9

        def one(n: int) -> None:
            # The traced run and the same app without us, back to back in this worker (the order
            # alternates): the pair sees the same load, and the difference is what we cost.
            runs = [
                ("traced", launcher_command(app), dict(common, OTEL_SERVICE_NAME=f"soak-{n}")),
                ("plain", [sys.executable, str(app)], base),
            ]
            pair = {}
            for name, command, env in runs if n % 2 else reversed(runs):
                pair[name] = exit_delay(command, env, f"soak-{n} {name}")
            if pair["traced"] is not None:
                delays.append(pair["traced"])
            if pair["plain"] is not None:
                plain_delays.append(pair["plain"])
            if pair["traced"] is not None and pair["plain"] is not None:
                over_plain.append(pair["traced"] - pair["plain"])

        started = time.monotonic()
        try:
            cycler.start()
            with ThreadPoolExecutor(args.parallel) as pool:
                for job in [pool.submit(one, n) for n in range(args.processes)]:
                    job.result()
            stop.set()
            cycler.join()
            soak_s = time.monotonic() - started
            at_exit = {span.service for span in receiver.spans() if span.name == "coldstart"}
            spooled_after = len(spool.list_entries(str(spool_dir)))
            receiver.max_body = None
            switch(receiver, "up")
            flushes = []
            for _ in range(5):
                flushed = subprocess.run(
                    [sys.executable, "-m", "otel_coldstart.cli", "flush", "--spool-dir", str(spool_dir)],
                    env=dict(common, OTEL_EXPORTER_OTLP_TIMEOUT="10"),
                    capture_output=True,
                    text=True,
                    check=False,
                )
                flushes.append((flushed.returncode, (flushed.stdout + flushed.stderr).strip()))
                if not spool.list_entries(str(spool_dir)):
                    break
            received = receiver.wait_for_spans(0, timeout=1)
        finally:
            stop.set()
            for hog in hogs:
                hog.kill()
                hog.wait()
            receiver.close()

        roots = Counter(span.service for span in received if span.name == "coldstart")
        spans_by_service: dict[str, Counter[str]] = defaultdict(Counter)
        for span in received:
            spans_by_service[span.service][span.span_id] += 1
        names = {f"soak-{n}" for n in range(args.processes)}
        delivered = {name for name in names if roots[name] >= 1}
        duplicated = {
            name for name in names if spans_by_service[name] and max(spans_by_service[name].values()) > 1
        }
        quarantined = quarantined_services(spool_dir) & names
        left = spool.list_entries(str(spool_dir))
        still_spooled = spooled_services(spool_dir) & names
        lost = names - delivered - quarantined - still_spooled
        figures = {
            "processes": args.processes,
            "parallel": args.parallel,
            "hogs": args.hogs,
            "cycle_s": args.cycle,
            "imports": args.imports,
            "protocol": args.protocol,
            "soak_s": round(soak_s, 1),
            "collector_states_visited": len(states),
            "started": len(names),
            "app_failures": len(failures),
            "delivered": len(delivered),
            "delivered_at_exit": len(at_exit & names),
            "spooled_at_end_of_soak": spooled_after,
            "quarantined": len(quarantined),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "left_in_spool_after_flush": len(left),
            "exit_delay_s": {
                "p50": round(percentile(delays, 0.50), 3),
                "p90": round(percentile(delays, 0.90), 3),
                "p99": round(percentile(delays, 0.99), 3),
                "max": round(max(delays), 3),
                "mean": round(statistics.mean(delays), 3),
            }
            if delays
            else {},
            "plain_exit_delay_s": {
                "p50": round(percentile(plain_delays, 0.50), 3),
                "p99": round(percentile(plain_delays, 0.99), 3),
                "max": round(max(plain_delays), 3),
            }
            if plain_delays
            else {},
            "exit_delay_over_plain_s": {
                "p50": round(percentile(over_plain, 0.50), 3),
                "p90": round(percentile(over_plain, 0.90), 3),
                "p99": round(percentile(over_plain, 0.99), 3),
                "max": round(max(over_plain), 3),
            }
            if over_plain
            else {},
            "flushes": flushes,
        }

    print(
        f"Delivery soak: {args.processes} process exits, {args.parallel} at a time, {args.hogs} CPU hogs, "
        f"collector cycling {'/'.join(STATES)} every {args.cycle} s ({args.protocol}), "
        f"{args.imports} extra imports"
    )
    for key in (
        "started",
        "delivered",
        "delivered_at_exit",
        "spooled_at_end_of_soak",
        "quarantined",
        "lost",
        "duplicated",
        "left_in_spool_after_flush",
        "app_failures",
    ):
        print(f"  {key:<28}{figures[key]:>8}")
    d = figures["exit_delay_s"]
    if d:
        print(f"  exit delay (s)              p50 {d['p50']}  p90 {d['p90']}  p99 {d['p99']}  max {d['max']}")
    p = figures["plain_exit_delay_s"]
    if p:
        print(f"  same app without us (s)     p50 {p['p50']}  p99 {p['p99']}  max {p['max']}")
    o = figures["exit_delay_over_plain_s"]
    if o:
        print(f"  exit delay over plain (s)   p50 {o['p50']}  p90 {o['p90']}  p99 {o['p99']}  max {o['max']}")
    for code, text in flushes:
        print(f"  flush exit {code}: {text.splitlines()[0] if text else ''}")
    for failure in failures[:5]:
        print(f"  app failure: {failure}")
    if lost:
        print(f"  lost: {sorted(lost)[:20]}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 1 if lost or duplicated or failures else 0


if __name__ == "__main__":
    sys.exit(main())
