"""A small service whose cold start otel-coldstart traces: real imports, then ready.

Run it plain (``python examples/demo_app.py``) or traced
(``opentelemetry-instrument python examples/demo_app.py``); ``otel-coldstart demo`` does the latter
and judges the trace.
"""

import argparse
import json
import logging
import os
import sqlite3
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from xml.etree import ElementTree

import otel_coldstart

try:  # the optional-speedup pattern: a failing import must behave exactly as without tracing
    import ujson as fast_json
except ImportError:
    fast_json = json


def build_app() -> dict:
    db = sqlite3.connect(":memory:")
    db.execute("create table orders (id integer primary key, total text)")
    db.execute("insert into orders (total) values (?)", (str(Decimal("19.99")),))
    config = ElementTree.fromstring("<config><port>8080</port></config>")
    return {"db": db, "port": int(config.findtext("port")), "handler": BaseHTTPRequestHandler}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve-seconds", type=float, default=0.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    app = build_app()
    otel_coldstart.mark_ready()
    if os.environ.get("DEMO_PRINT_READY_NS"):  # benchmarks/startup_overhead.py reads this
        print(f"ready_ns={time.time_ns()}", flush=True)
    logging.getLogger("demo").info("ready on port %s (%s)", app["port"], fast_json.dumps({"ok": True}))
    if args.serve_seconds:
        time.sleep(args.serve_seconds)


if __name__ == "__main__":
    main()
