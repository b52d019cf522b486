"""The socketserver ready detector comes with ``socketserver``, which ``logging.config``,
``http.server`` and ``xmlrpc.server`` import: it must bring no module of its own into the program
(it used to import wrapt, and wrapt asyncio, inspect and importlib.metadata: ~150 modules), and
the methods it wraps must look like the originals (``tests/test_real_servers.py`` shows that it
still detects ``http.server``, Django's runserver and Werkzeug's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import auto_env, clean_env

from otel_coldstart.validate.readers import read_file

APP = """
import inspect, json, logging.config, socketserver, sys
methods = [socketserver.TCPServer.server_activate, socketserver.BaseServer.serve_forever]
print(json.dumps({
    "modules": sorted(m for m in sys.modules if not m.startswith("otel_coldstart")),
    "methods": [[m.__name__, m.__qualname__, m.__module__, m.__doc__, str(inspect.signature(m))]
                for m in methods],
}))
"""


def _run(env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", APP], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_logging_config_under_tracing_imports_what_it_imports_plain(tmp_path: Path) -> None:
    trace_file = tmp_path / "trace.jsonl"
    plain = _run(clean_env())
    traced = _run(auto_env(trace_file, OTEL_PYTHON_COLDSTART_AUTO="1"))
    assert traced["methods"] == plain["methods"]
    extra = set(traced["modules"]) - set(plain["modules"])
    assert extra.isdisjoint({"wrapt", "asyncio", "inspect", "importlib.metadata"}), sorted(extra)
    # Only the recorder's own start-up modules (contextvars for the import stack, and the like).
    assert len(extra) <= 12, sorted(extra)
    (trace,) = read_file(str(trace_file))[1]
    assert trace.root.attributes["coldstart.ready.trigger"] == "exit"
