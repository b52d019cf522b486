"""Does a faster JSON parser earn its place in the validator? Side by side, CPU time, best of 3:

    python benchmarks/json_parsers.py [--spans 100000]

on the same 100,000-span OTLP JSON file: ``json.loads`` of the whole file, ``orjson.loads`` and
``msgspec.json.decode`` when installed (neither is a dependency), the validator's streaming scan
alone (the standard library's C scanner on one span at a time, converting nothing) and the whole
streaming read (scan + span records + grouping). The parser's share of the read is the scan; a
parser twice as fast could save at most half of that share, and none of them parse incrementally.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

from validate_100k import generate

from otel_coldstart.validate import inflate, readers, stream


def _best(run, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.jsonl"
        path.write_text(json.dumps(generate(args.spans, "wide")) + "\n")
        data = path.read_bytes()
        rows = [("json.loads (whole file)", _best(lambda: json.loads(data)))]
        for module, call in (("orjson", "loads"), ("msgspec.json", "decode")):
            try:
                function = getattr(importlib.import_module(module), call)
            except ImportError:
                rows.append((f"{module}.{call} (not installed)", float("nan")))
                continue
            rows.append((f"{module}.{call} (whole file)", _best(lambda f=function: f(data))))

        def scan_only() -> None:
            reader = stream.Reader(inflate.file_chunks(str(path)), "bench")
            skip = lambda *a: None  # noqa: E731
            for _ in stream.documents(reader, skip, lambda v: {}, readers.document_spans, lambda t, s: []):
                pass

        rows.append(("validator: streaming scan only", _best(scan_only)))
        rows.append(("validator: streaming read", _best(lambda: readers.read_file(str(path)))))
    base = rows[0][1]
    print(f"{args.spans} spans, {len(data) / 1e6:.0f} MB, CPU seconds, best of 3:")
    for name, seconds in rows:
        print(f"  {name:<40} {seconds:6.2f} s  {seconds / base:5.2f}x json.loads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
