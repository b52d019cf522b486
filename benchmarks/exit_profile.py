"""Where an exit's time goes: each step of our exit path, wall and CPU, idle or beside CPU hogs.

An app imports ``--imports`` modules and ends (its cold start ends at exit: the whole delivery
happens in the exit budget). Each round runs it traced, with ``OTEL_PYTHON_COLDSTART_EXIT_PROFILE``
set (``deliver/exit_probe.py``), and plain (the same app, same interpreter, no ``OTEL_*``), in
alternating order, ``--parallel`` processes at a time. Usage::

    python benchmarks/exit_profile.py [--imports 20000] [--rounds 10] [--hogs 0] [--parallel 1]
                                      [--collector down|up]

``--baseline DIR`` adds a third variant, otel_coldstart from another source tree, in the same
rounds. It works only where nothing outranks ``PYTHONPATH``: an editable install's finder does,
and so does the working directory (``opentelemetry-instrument`` puts it on the app's path). To
compare two versions reliably, install each in its own virtualenv and run this script with each
one's Python from a directory outside both trees (``cd /tmp && /venv-a/bin/python
.../exit_profile.py``).

Printed per step: the median and 90th percentile of its wall time and its CPU time (wall over CPU
is how starved of CPU the process was). ``app_to_exit`` runs from the app's last statement to our
first handler; ``teardown`` from our last handler to the process's end as its parent sees it (the
interpreter's finalisation and the kernel's reaping). Then the exit delay of both variants, and the
**exit delay over plain**: each traced run minus the plain run of the same round and slot, which
ran beside it under the same load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import import_tree  # noqa: E402
from otlp_receiver import HttpReceiver  # noqa: E402
from private_spool import isolate, traced_to  # noqa: E402

from otel_coldstart.cli.demo import launcher_command  # noqa: E402

APP = """\
import sys, time
sys.path.insert(0, {root!r})
{imports}
print(f"last_ns={{time.time_ns()}}", flush=True)
"""


def make_app(root: Path, modules: int, per_package: int = 100) -> Path:
    """An app importing ``modules`` one-line modules in packages of ``per_package``."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    if modules:
        import_tree(root, modules, per_package)
        lines.append("import bigtree")
    app = root / "app.py"
    app.write_text(APP.format(root=str(root), imports="\n".join(lines)))
    return app


def run(command: list[str], env: dict[str, str]) -> tuple[int, int]:
    """(the app's last statement, the moment the parent saw the process end), in ns."""
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    ended = time.time_ns()
    if completed.returncode != 0 or "last_ns=" not in completed.stdout:
        raise RuntimeError(f"{command} failed ({completed.returncode}): {completed.stderr[-500:]}")
    return int(completed.stdout.split("last_ns=")[1].split()[0]), ended


def read_marks(path: Path) -> list[tuple[str, int, int, int]]:
    marks = []
    for line in path.read_text().splitlines():
        step, wall, cpu, modules = line.split()
        if step != "pid":
            marks.append((step, int(wall), int(cpu), int(modules)))
    return marks


def q(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imports", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--hogs", type=int, default=0, help="CPU-bound busy loops beside the apps")
    parser.add_argument("--parallel", type=int, default=1, help="traced and plain pairs at a time")
    parser.add_argument("--collector", choices=["down", "up"], default="down")
    parser.add_argument("--timeout", default="0.5", help="OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run otel_coldstart from this source tree (e.g. `git archive REV | tar -x -C DIR`), "
        "put first on PYTHONPATH, in the same rounds: before and after under the same load",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, HttpReceiver(args.collector) as receiver:
        work = Path(tmp)
        app = make_app(work / "app", args.imports)
        base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        plain_env = isolate(base, tmp)
        traced_env = traced_to(
            receiver.env(),
            tmp,
            OTEL_SERVICE_NAME="exit-profile",
            OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT=args.timeout,
        )
        # Warm the page cache and the bytecode caches: every round then measures the same thing.
        run([sys.executable, str(app)], plain_env)
        hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(args.hogs)]
        traced_names = ["traced", "baseline"] if args.baseline else ["traced"]
        steps: dict[str, dict[str, list[tuple[float, float]]]] = {n: defaultdict(list) for n in traced_names}
        order: list[str] = []
        delays: dict[str, list[float]] = defaultdict(list)
        imported: list[int] = []

        def pair(slot: int, round_: int) -> None:
            variants = []
            for name in traced_names:
                env = dict(
                    traced_env, OTEL_PYTHON_COLDSTART_EXIT_PROFILE=str(work / f"{name}-{round_}-{slot}")
                )
                if name == "baseline":
                    env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.baseline, env.get("PYTHONPATH")]))
                variants.append((name, launcher_command(app), env))
            variants.append(("plain", [sys.executable, str(app)], plain_env))
            shift = (round_ + slot) % len(variants)  # rotating order: no variant always goes first
            measured = {}
            for name, command, variant_env in variants[shift:] + variants[:shift]:
                last, ended = run(command, variant_env)
                measured[name] = (ended - last) / 1e9
                if name in traced_names:
                    marks = read_marks(Path(variant_env["OTEL_PYTHON_COLDSTART_EXIT_PROFILE"]))
                    previous = ("app_to_exit", last, marks[0][2])
                    for step, wall, cpu, _ in marks:
                        if step not in order:
                            order.append(step)
                        steps[name][step].append(((wall - previous[1]) / 1e9, (cpu - previous[2]) / 1e9))
                        previous = (step, wall, cpu)
                    steps[name]["teardown"].append(((ended - marks[-1][1]) / 1e9, 0.0))
                    if name == "traced":
                        imported.append(marks[-1][3] - marks[0][3])
            for name, delay in measured.items():
                delays[name].append(delay)
                if name != "plain":
                    delays[f"{name} - plain"].append(delay - measured["plain"])

        try:
            with ThreadPoolExecutor(args.parallel) as pool:
                for round_ in range(args.rounds):
                    list(pool.map(pair, range(args.parallel), [round_] * args.parallel))
                    print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()

    print(
        f"Exit profile: {args.imports} imports, collector {args.collector}, {args.hogs} CPU hogs, "
        f"{args.parallel} run(s) of each variant at a time, {len(delays['plain'])} rounds (ms)"
    )
    order[:0] = ["exit_begins"]
    for name in traced_names:
        print(f"{name:<22}{'wall p50':>10}{'wall p90':>10}{'cpu p50':>10}{'cpu p90':>10}{'n':>5}")
        for step in dict.fromkeys([*order, "teardown"]):
            values = steps[name].get(step)
            if not values:
                continue
            walls, cpus = [v[0] * 1e3 for v in values], [v[1] * 1e3 for v in values]
            label = "  app_to_exit" if step == "exit_begins" else f"  {step}"
            cpu_p50 = f"{q(cpus, 0.5):>10.1f}" if step != "teardown" else f"{'-':>10}"
            cpu_p90 = f"{q(cpus, 0.9):>10.1f}" if step != "teardown" else f"{'-':>10}"
            print(
                f"{label:<22}{q(walls, 0.5):>10.1f}{q(walls, 0.9):>10.1f}{cpu_p50}{cpu_p90}{len(values):>5}"
            )
    print(f"modules our exit imported: median {statistics.median(imported)}")
    for name, values in delays.items():
        print(
            f"exit delay {name:<17} p50 {q(values, 0.5):.3f} s  p90 {q(values, 0.9):.3f} s  "
            f"p99 {q(values, 0.99):.3f} s  max {max(values):.3f} s"
        )


if __name__ == "__main__":
    main()
