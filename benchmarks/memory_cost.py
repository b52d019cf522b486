"""What memory measurement costs on the start-up path, measured side by side in one run.

1. One ``take_memory_snapshot()`` (a phase boundary): microseconds per call, in this process.
2. ``OTEL_PYTHON_COLDSTART_IMPORT_MEMORY=1`` (RSS read before and after every import): an app that
   imports N generated modules, traced with the option off and on, interleaved rounds; the figure
   that matters is the difference of medians divided by N (cost per import).

Usage::

    python benchmarks/memory_cost.py [--modules 2000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from private_spool import isolate  # noqa: E402

from otel_coldstart.cli.demo import launcher_command, traced_env  # noqa: E402
from otel_coldstart.record import memory  # noqa: E402

APP = """import time, otel_coldstart
import many
otel_coldstart.mark_ready()
print(f"ready_ns={time.time_ns()}")
"""


def snapshot_cost_us(calls: int = 20_000) -> dict[str, float]:
    return {
        "take_snapshot_us": timeit.timeit(lambda: memory.take_snapshot("bench"), number=calls) / calls * 1e6,
        "rss_read_us": timeit.timeit(memory.rss, number=calls) / calls * 1e6,
        "uss_read_us (ready only)": timeit.timeit(memory.uss, number=200) / 200 * 1e6,
    }


def make_app(root: Path, modules: int) -> Path:
    package = root / "many"
    package.mkdir()
    (package / "__init__.py").write_text("".join(f"from many import m{i}\n" for i in range(modules)))
    for i in range(modules):
        (package / f"m{i}.py").write_text(f"VALUE = {i}\n")
    app = root / "app.py"
    app.write_text(APP)
    return app


def time_to_ready(app: Path, env: dict[str, str]) -> float:
    start = time.time_ns()
    out = subprocess.run(
        launcher_command(app), env=env, cwd=app.parent, capture_output=True, text=True, check=True
    ).stdout
    ready = next(int(line.split("=", 1)[1]) for line in out.splitlines() if line.startswith("ready_ns="))
    return (ready - start) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modules", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    for name, value in snapshot_cost_us().items():
        print(f"{name:<28}{value:>8.1f} us")

    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp), args.modules)
        base = isolate(traced_env(str(Path(tmp) / "trace.jsonl"), service_name="memory-bench"), tmp)
        variants = {
            "import memory off": dict(base, OTEL_PYTHON_COLDSTART_IMPORT_MEMORY="0"),
            "import memory on": dict(base, OTEL_PYTHON_COLDSTART_IMPORT_MEMORY="1"),
        }
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for env in variants.values():
            time_to_ready(app, env)  # warm .pyc files and the page cache
        for round_no in range(args.rounds):
            order = list(variants) if round_no % 2 == 0 else list(reversed(variants))
            for name in order:
                samples[name].append(time_to_ready(app, variants[name]))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    off, on = medians["import memory off"], medians["import memory on"]
    print(f"\n{args.modules} imports, {args.rounds} interleaved rounds, medians ({os.cpu_count()} cores)")
    for name, value in medians.items():
        print(f"{name:<20}{value:>9.1f} ms to ready")
    print(
        f"IMPORT_MEMORY costs {on - off:+.1f} ms ({on / off:.3f}x), "
        f"{(on - off) * 1000 / args.modules:+.1f} us per import"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
