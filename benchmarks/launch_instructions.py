"""The launcher tax in instructions: plain vs ``OTEL_PYTHON_COLDSTART_AUTO=1``, counted by valgrind.

Wall and CPU time on a shared 2-core machine move by 10-20 % from run to run (another benchmark
beside it, the hypervisor), more than the costs this tax is made of. Instructions executed in user
space do not: each variant runs once under ``valgrind --tool=cachegrind --cache-sim=no`` (after one
run outside it, to warm the entry-point cache), with ``PYTHONHASHSEED=0``. Usage::

    python benchmarks/launch_instructions.py [--programs pass,pip,requests] [--jobs 2]
                                             [--compare-with DIR]

Variants (all with the trace file as the only sink, exporters ``none``):

- ``traced``: environment activation, the start-up sampler off (under valgrind the program runs
  ~20x slower and a 10 ms sampler would take ~20x its samples);
- ``no sink``: the same with no trace file: no exit work. ``traced`` minus ``no sink`` is the exit;
  ``no sink`` minus plain is the start-up hook, the import recorder and the ready detectors.

``--compare-with DIR``: the same variants with another source tree of otel_coldstart first on
``PYTHONPATH`` (both trees are then put there, so each pays the same extra path entry). Kernel time
(page faults, the sampler's GIL hand-overs) is not counted. A rough guide on this machine: 4-5 M
instructions per millisecond of CPU for Python-heavy code.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from launch_paths import programs  # noqa: E402  (the same programs as the wall-time benchmark)
from private_spool import isolate  # noqa: E402

PYTHON = sys.executable


def environment(tmp: Path, variant: str, tree: str | None) -> dict[str, str]:
    env = isolate({k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, str(tmp))
    env["PYTHONHASHSEED"] = "0"
    if tree is not None:
        env["PYTHONPATH"] = tree
    if variant == "plain":
        return env
    env.update(
        OTEL_PYTHON_COLDSTART_AUTO="1",
        OTEL_SERVICE_NAME="coldstart-bench",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_COLDSTART_PROFILE_INTERVAL_MS="0",
        # Under valgrind every step takes ~20x: the exit's budget checks must not skip work.
        OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT="60",
    )
    if variant == "traced":
        env["OTEL_PYTHON_COLDSTART_TRACE_FILE"] = str(tmp / "trace.jsonl")
    return env


def count(command: list[str], env: dict[str, str]) -> int:
    subprocess.run(command, env=env, capture_output=True, check=True)  # warm caches
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{command} under valgrind failed: {done.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--programs", default="pass,pip,requests")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--compare-with", help="another source tree of otel_coldstart")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is needed: apt-get install -y valgrind")
        return 2
    trees: dict[str, str | None] = {"this tree": None}
    if args.compare_with:
        trees = {"this tree": str(ROOT), "other tree": str(Path(args.compare_with).resolve())}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        progs = programs(tmp)
        jobs = []
        for program in (p.strip() for p in args.programs.split(",") if p.strip()):
            for label, tree in trees.items():
                for variant in ("plain", "no sink", "traced"):
                    if variant == "plain" and label != "this tree":
                        continue
                    work = tmp / f"{program}-{label}-{variant}".replace(" ", "_")
                    work.mkdir()
                    jobs.append(
                        (program, label, variant, [PYTHON, *progs[program]], environment(work, variant, tree))
                    )
        with ThreadPoolExecutor(args.jobs) as pool:
            counts = list(pool.map(lambda job: count(job[3], job[4]), jobs))
    plain: dict[str, int] = {}
    print("M instructions (valgrind); deltas over plain")
    for (program, label, variant, _, _), total in zip(jobs, counts, strict=True):
        if variant == "plain":
            plain[program] = total
            print(f"{program:<9} {'plain':<22} {total / 1e6:9.1f}")
            continue
        delta = (total - plain[program]) / 1e6
        print(f"{program:<9} {label + ', ' + variant:<22} {total / 1e6:9.1f}  +{delta:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
