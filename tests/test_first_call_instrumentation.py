"""The requests instrumentation is loaded on the first request, not on ``import requests``
(``lazy_instrumentors.ON_FIRST_CALL``): an app that imports requests and sends nothing before it
exits pays nothing for it, and the first request is traced and carries the context as every later
one. Real processes, the real contrib instrumentation, a real HTTP server and OTLP receiver."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import auto_env, run_instrumented, write
from otlp_receiver import HttpReceiver

from otel_coldstart.validate.readers import read_file

pytest.importorskip("opentelemetry.instrumentation.requests")

CLI = str(Path(sys.executable).with_name("otel-coldstart"))
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

IMPORTS_ONLY = """
import sys
import requests
print(requests.Session.send.__name__, requests.Session.send.__module__,
      "opentelemetry.instrumentation.requests" in sys.modules)
"""

# The remote context attached before the first request: a no-op tracer still propagates it, so an
# instrumented first call must carry it (an uninstrumented one would not).
FIRST_REQUEST = f"""
import os, sys
import requests
from opentelemetry import context, propagate
print("before:", "opentelemetry.instrumentation.requests" in sys.modules)
token = context.attach(propagate.extract({{"traceparent": "00-{TRACE_ID}-00f067aa0ba902b7-01"}}))
response = requests.Session().get(os.environ["TEST_URL"])
print("after:", response.status_code, response.text,
      getattr(requests.Session.send, "opentelemetry_instrumentation_requests_applied", False))
"""

# Our OTLP/HTTP exporter sends with requests after ready: that is our work, not the app's first
# request, and must not load the app's instrumentation.
OUR_EXPORT = """
import sys
import requests
import otel_coldstart
from otel_coldstart.deliver import lifecycle
otel_coldstart.mark_ready()
lifecycle._worker.join(20)
print("ours sent:", "opentelemetry.exporter.otlp.proto.http" in sys.modules,
      "opentelemetry.instrumentation.requests" in sys.modules, requests.Session.send.__module__)
"""


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", seen
    finally:
        server.shutdown()
        thread.join(5)


def launched(path: str, script: Path, trace_file: Path, **extra: str) -> subprocess.CompletedProcess:
    if path == "run":
        return subprocess.run(
            [CLI, "run", sys.executable, str(script)],
            env=auto_env(trace_file, **extra),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    return run_instrumented(script, trace_file, env=extra).completed


def only_trace(path: Path):
    traces = read_file(str(path))[1]
    assert len(traces) == 1, f"expected one cold start, got {len(traces)}"
    return traces[0]


@pytest.mark.parametrize("path", ["run", "opentelemetry-instrument"])
def test_importing_requests_loads_no_instrumentation_until_a_request(tmp_path: Path, path: str):
    script = write(tmp_path / "app.py", IMPORTS_ONLY)
    trace_file = tmp_path / "trace.jsonl"
    done = launched(path, script, trace_file)
    assert done.returncode == 0, done.stderr
    # The stand-in looks like the method it stands in for.
    assert done.stdout == "send requests.sessions False\n"
    assert done.stderr == ""
    trace = only_trace(trace_file)
    assert not [s for s in trace.spans if s.name == "instrument requests"]
    assert [s for s in trace.spans if s.attributes.get("coldstart.module.name") == "requests"]


@pytest.mark.parametrize("path", ["run", "opentelemetry-instrument"])
def test_the_first_request_is_instrumented_before_it_is_sent(
    tmp_path: Path, path: str, http_server: tuple[str, list[dict[str, str]]]
):
    url, seen = http_server
    script = write(tmp_path / "app.py", FIRST_REQUEST)
    trace_file = tmp_path / "trace.jsonl"
    done = launched(path, script, trace_file, TEST_URL=url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "before: False\nafter: 200 ok True\n"
    assert done.stderr == ""
    # Exactly one request, and it carried the context: it went through the instrumentation.
    assert len(seen) == 1
    assert seen[0]["traceparent"].split("-")[1] == TRACE_ID
    trace = only_trace(trace_file)
    (instrument,) = [s for s in trace.spans if s.name == "instrument requests"]
    (imported,) = [s for s in trace.spans if s.attributes.get("coldstart.module.name") == "requests"]
    assert instrument.start_ns >= imported.start_ns + imported.duration_ns
    # The instrumentation's load is inside the step (on the first request), not before it.
    assert "import opentelemetry.instrumentation.requests" in {s.name for s in instrument.children}


def test_our_exporter_sending_with_requests_does_not_instrument_the_app(tmp_path: Path):
    script = write(tmp_path / "app.py", OUR_EXPORT)
    trace_file = tmp_path / "trace.jsonl"
    with HttpReceiver("up") as receiver:
        done = launched(
            "run",
            script,
            trace_file,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "ours sent: True False requests.sessions\n"
        assert any(span.name == "coldstart" for span in receiver.spans())
