"""The launcher tax: plain vs ``otel-coldstart run`` vs ``OTEL_PYTHON_COLDSTART_AUTO=1`` vs
``opentelemetry-instrument`` with our distro vs the stock distro, side by side in one run.

Programs: ``python -c pass``, the demo app, and real third-party programs (``pip list``, a script
importing requests). Each round runs every variant of a program back to back in rotating order,
so machine noise hits them alike; figures are medians of wall time (spawn to exit; for
``to_app_code``, spawn to the first line of application code). Usage::

    python benchmarks/launch_paths.py [--rounds 15] [--programs to_app_code,pass,demo,pip,requests]

Also printed:

- what ``otel_coldstart.pth`` costs every interpreter of the environment when it is off (the
  guarded line, executed in-process);
- under ``opentelemetry-instrument`` with our distro, the part of ``coldstart.boot`` that no span
  explains (boot minus the wrapper span), against plain ``python -c pass``.

Our variants write their trace to a temporary file and the stock distro exports nothing
(``OTEL_*_EXPORTER=none``); nothing touches the user's spool (a temporary spool directory).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from private_spool import isolate  # noqa: E402

BIN = Path(sys.executable).parent
PYTHON = sys.executable

REQUESTS_APP = """
import json, sqlite3, email.message, threading
import requests
t = threading.Thread(target=lambda: None); t.start(); t.join()
print(requests.__version__)
"""


def programs(tmp: Path) -> dict[str, list[str]]:
    app = tmp / "requests_app.py"
    app.write_text(REQUESTS_APP)
    demo = ROOT / "examples" / "demo_app.py"
    return {
        # Spawn -> the first line of application code (it prints time.time_ns()): the launch tax
        # alone, without what happens at exit.
        "to_app_code": ["-c", "import time; print(time.time_ns())"],
        "pass": ["-c", "pass"],
        "demo": [str(demo)],
        "pip": ["-m", "pip", "list", "--disable-pip-version-check"],
        "requests": [str(app)],
    }


def policy_variants(tmp: Path, endpoint: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """``otel-coldstart run`` exporting to a live OTLP/HTTP receiver, no trace file: the exit
    policy ``OTEL_PYTHON_COLDSTART_EXIT_EXPORT`` auto (send at exit) against defer (spool)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    otlp = dict(
        isolate(base, str(tmp / "policy")),
        OTEL_SERVICE_NAME="coldstart-bench",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
    )
    run = [str(BIN / "otel-coldstart"), "run", PYTHON]
    return {
        "run,otlp auto": (run, otlp),
        "run,otlp defer": (run, dict(otlp, OTEL_PYTHON_COLDSTART_EXIT_EXPORT="defer")),
    }


def variants(tmp: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    base = isolate({k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, str(tmp))
    quiet = dict(
        base,
        OTEL_SERVICE_NAME="coldstart-bench",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    ours = dict(quiet, OTEL_PYTHON_COLDSTART_TRACE_FILE=str(tmp / "ours.jsonl"))
    instrument = str(BIN / "opentelemetry-instrument")
    return {
        "plain": ([PYTHON], base),
        "run": ([str(BIN / "otel-coldstart"), "run", PYTHON], ours),
        "env": ([PYTHON], dict(ours, OTEL_PYTHON_COLDSTART_AUTO="1")),
        "instrument+ours": (
            [instrument, PYTHON],
            dict(
                quiet,
                OTEL_PYTHON_DISTRO="otel_coldstart",
                OTEL_PYTHON_CONFIGURATOR="otel_coldstart",
                OTEL_PYTHON_COLDSTART_TRACE_FILE=str(tmp / "instrument.jsonl"),
            ),
        ),
        "instrument+stock": (
            [instrument, PYTHON],
            dict(
                quiet,
                OTEL_PYTHON_DISTRO="distro",
                OTEL_PYTHON_CONFIGURATOR="configurator",
                OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="coldstart_imports,coldstart_services",
            ),
        ),
    }


def measure_ms(command: list[str], env: dict[str, str], to_app_code: bool) -> tuple[float, float]:
    """Spawn -> exit, or spawn -> the time the program printed; and the process's CPU time (user +
    system, of the whole process: for ``to_app_code`` too, exit included), which a busy machine
    disturbs far less than wall time."""
    start_ns = time.time_ns()
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = (time.perf_counter() - start) * 1000
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise RuntimeError(f"{command} exited {process.returncode}: {stderr.decode()[-500:]}")
    cpu = (usage.ru_utime + usage.ru_stime) * 1000
    if to_app_code:
        return (int(stdout.split()[0]) - start_ns) / 1e6, cpu
    return elapsed, cpu


def pth_off_cost_ns() -> float:
    """The guarded .pth line with none of its conditions true, as site executes it."""
    line = (ROOT / "otel_coldstart.pth").read_text().strip()
    code = compile(line, "otel_coldstart.pth", "exec")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("OTEL_PYTHON_COLDSTART_")}
    try:
        number = 200_000
        empty = compile("pass", "empty.pth", "exec")
        best = min(timeit.repeat(lambda: exec(code, {}), number=number, repeat=5))
        baseline = min(timeit.repeat(lambda: exec(empty, {}), number=number, repeat=5))
    finally:
        os.environ.update(saved)
    return max(0.0, best - baseline) / number * 1e9


def unexplained_boot_ms(trace_file: Path) -> list[float]:
    """Per cold start: coldstart.boot minus its coldstart.wrapper child."""
    sys.path.insert(0, str(ROOT))
    from otel_coldstart.validate.readers import read_file

    figures = []
    for trace in read_file(str(trace_file))[1]:
        boot = next((c for c in trace.root.children if c.name == "coldstart.boot"), None)
        if boot is None:
            continue
        wrapper = sum(c.duration_ns for c in boot.children if c.name == "coldstart.wrapper")
        figures.append((boot.duration_ns - wrapper) / 1e6)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--programs", default="to_app_code,pass,demo,pip,requests")
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument(
        "--exit-policy",
        action="store_true",
        help="add `run` exporting to a live OTLP/HTTP receiver at exit: EXIT_EXPORT auto vs defer",
    )
    args = parser.parse_args()
    try:
        import opentelemetry.distro  # noqa: F401
    except ImportError:
        print("the stock opentelemetry-distro is needed for the comparison: pip install -e '.[dev]'")
        return 2
    results: dict[str, dict[str, float]] = {}
    cpu_results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        progs = programs(tmp)
        wanted = [p.strip() for p in args.programs.split(",") if p.strip()]
        runs = variants(tmp)
        if args.exit_policy:
            sys.path.insert(0, str(ROOT / "tests"))
            from otlp_receiver import HttpReceiver

            receiver = stack.enter_context(HttpReceiver("up"))
            runs.update(policy_variants(tmp, receiver.endpoint))
        names = list(runs)
        unexplained: list[float] = []
        for program in wanted:
            samples: dict[str, list[float]] = {n: [] for n in names}
            cpu_samples: dict[str, list[float]] = {n: [] for n in names}
            first_line = program == "to_app_code"
            for name in names:  # warm the page cache and .pyc files; not counted
                command, env = runs[name]
                measure_ms([*command, *progs[program]], env, first_line)
            for round_no in range(args.rounds):
                shift = round_no % len(names)
                for name in names[shift:] + names[:shift]:
                    command, env = runs[name]
                    wall, cpu = measure_ms([*command, *progs[program]], env, first_line)
                    samples[name].append(wall)
                    cpu_samples[name].append(cpu)
            results[program] = {name: statistics.median(values) for name, values in samples.items()}
            cpu_results[program] = {name: statistics.median(v) for name, v in cpu_samples.items()}
            if program == "pass":
                unexplained = unexplained_boot_ms(tmp / "instrument.jsonl")
            for trace_file in ("ours.jsonl", "instrument.jsonl"):
                (tmp / trace_file).unlink(missing_ok=True)
    print(
        f"medians of {args.rounds} interleaved rounds ({os.cpu_count()} cores), ms: spawn -> exit, "
        "except to_app_code: spawn -> first line of app code"
    )
    header = f"{'program':<10}" + "".join(f"{n:>22}" for n in names)
    print(header)
    for program, figures in results.items():
        plain = figures["plain"]
        cells = [f"{figures[n]:8.1f} x{figures[n] / plain:4.2f} +{figures[n] - plain:5.0f}" for n in names]
        print(f"{program:<10}" + "".join(f"{c:>22}" for c in cells))
    print("CPU time (user + system) of the whole process, medians, ms:")
    print(header)
    for program, figures in cpu_results.items():
        plain = figures["plain"]
        cells = [f"{figures[n]:8.1f} x{figures[n] / plain:4.2f} +{figures[n] - plain:5.0f}" for n in names]
        print(f"{program:<10}" + "".join(f"{c:>22}" for c in cells))
    off_ns = pth_off_cost_ns()
    print(f"otel_coldstart.pth when off: {off_ns / 1000:.2f} us per interpreter")
    document: dict[str, object] = {
        "wall_ms_median": results,
        "cpu_ms_median": cpu_results,
        "pth_off_us": off_ns / 1000,
    }
    if unexplained and "pass" in results:
        median = statistics.median(unexplained)
        goal = 2 * results["pass"]["plain"] + 10
        print(
            f"opentelemetry-instrument + ours, python -c pass: coldstart.boot unexplained by any span "
            f"{median:.1f} ms (median of {len(unexplained)}; goal <= 2 x plain + 10 = {goal:.1f} ms)"
        )
        document["unexplained_boot_ms_median"] = median
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
