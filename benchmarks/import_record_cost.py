"""What recording one import costs, side by side in one run: the import hook around a stand-in
for ``importlib._bootstrap._find_and_load`` that returns a module at once, versus that stand-in
called bare. The difference is our per-import recording cost (timeline record, clock reads,
context variable, what the span will need), with the file system and module execution taken out,
so the figure is stable enough to compare two versions of the recorder.

Each variant runs in its own fresh process, interleaved; figures are the median over rounds of
the minimum of repeated timeit runs, in nanoseconds per import. ``--compare-with REF`` also
measures the recorder of a git ref (say ``main``) in the same run, so that a change to the
recorder is judged against the machine's load of the moment, not another day's figure. Usage::

    python benchmarks/import_record_cost.py [--rounds 5] [--number 200000] [--compare-with REF]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import timeit
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "benchmark_module_never_imported"


def measure(mode: str, number: int, root: Path) -> float:
    sys.path.insert(0, str(root))
    from otel_coldstart.record import imports, timeline

    module = types.ModuleType(NAME)
    module.__spec__ = sys.modules["json"].__spec__ if "json" in sys.modules else None
    gcd = sys.modules["_frozen_importlib"]._gcd_import

    def stand_in(name: str, import_: object) -> types.ModuleType:
        return module

    if mode == "bare":
        call = stand_in
    elif hasattr(imports, "make_hook"):
        call = imports.make_hook(stand_in)
    else:  # the recorder before make_hook: a wrapt wrapper around the original
        import wrapt

        call = wrapt.FunctionWrapper(stand_in, imports._find_and_load)
    tl = timeline.begin("benchmark")

    def batch() -> None:
        for _ in range(number):
            call(NAME, gcd)
        # Keep memory flat (a real cold start has thousands, not millions); release() empties the
        # imports however a version keeps them (objects, or the recorder's columns).
        timeline.release(tl)

    return min(timeit.repeat(batch, number=1, repeat=5)) / number * 1e9


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compare-with", metavar="REF", help="also measure this git ref's recorder")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode, args.number, Path(args.root))))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        roots = {"this tree": ROOT}
        if args.compare_with:
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", args.compare_with, "otel_coldstart"],
                capture_output=True,
                check=True,
            ).stdout
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(tmp, filter="data")
            roots[args.compare_with] = Path(tmp)
        variants = [("bare", ROOT)] + [("hooked", root) for root in roots.values()]
        results: dict[int, list[float]] = {i: [] for i in range(len(variants))}
        for _ in range(args.rounds):
            for i, (mode, root) in enumerate(variants):  # interleaved: machine load hits all alike
                command = [sys.executable, __file__, "--mode", mode, "--number", str(args.number)]
                out = subprocess.run(
                    [*command, "--root", str(root)], capture_output=True, text=True, check=True
                ).stdout
                results[i].append(json.loads(out))
    bare = statistics.median(results[0])
    print(f"python {sys.version.split()[0]}; bare stand-in call {bare:.0f} ns")
    for i, label in enumerate(roots, start=1):
        print(f"recording cost per import, {label}: {statistics.median(results[i]) - bare:.0f} ns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
