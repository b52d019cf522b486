"""What the service instrumentation costs a ``ServiceFactory.get()``, side by side in one run.

Three variants, each in its own fresh process (the wrapping happens at import time):

- ``bare``: no instrumentation;
- ``instrumented``: the service instrumentor installed, nothing being recorded (our distro not
  chosen, or after ``uninstall``): wrappers that step aside;
- ``recording``: the cold start being recorded (before ready): every init is a timeline record
  and every cache hit is counted.

Figures: a cache hit (``get`` of a created service) and the extra cost of a first ``get`` (an
init of a factory that does nothing), in microseconds, medians of repeated timeit runs. Usage::

    python benchmarks/service_get.py [--inits 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(mode: str, inits: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from otel_coldstart.record import service_tracing, timeline

    if mode == "recording":
        timeline.begin("benchmark")
    if mode in ("instrumented", "recording"):
        service_tracing.install()
    from otel_coldstart.library.services import ServiceFactory

    factory = ServiceFactory(mark_ready_when_critical_done=False)
    factory.register("hit", object)
    factory.get("hit")
    hit_us = min(timeit.repeat(lambda: factory.get("hit"), number=100_000, repeat=5)) / 100_000 * 1e6

    for i in range(inits):
        factory.register(f"s{i}", object)
    names = iter([f"s{i}" for i in range(inits)])
    first_us = timeit.timeit(lambda: factory.get(next(names)), number=inits) / inits * 1e6
    return {"cache_hit_us": hit_us, "first_get_us": first_us - hit_us}


def main() -> int:
    from private_spool import isolate

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inits", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode, args.inits)))
        return 0
    modes = ("bare", "instrumented", "recording")
    samples: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as tmp:
        env = isolate(dict(os.environ), tmp)
        for _ in range(args.rounds):
            for mode in modes:
                out = subprocess.run(
                    [sys.executable, __file__, "--mode", mode, "--inits", str(args.inits)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=env,
                ).stdout
                samples[mode].append(json.loads(out))
    print(f"ServiceFactory.get(), medians of {args.rounds} rounds (fresh process per variant and round)")
    print(f"{'variant':<14}{'cache hit us':>14}{'first get +us':>15}")
    for mode in modes:
        hit = statistics.median(s["cache_hit_us"] for s in samples[mode])
        first = statistics.median(s["first_get_us"] for s in samples[mode])
        print(f"{mode:<14}{hit:>14.2f}{first:>15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
