"""Long-running processes under the real launcher (or plain), for servers and stop signals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from otel_coldstart.cli.demo import traced_env

BIN = Path(sys.executable).parent
#: Every process ``start`` launched: ``kill_started`` makes sure none outlives its test.
_started: list[subprocess.Popen] = []


def kill_started() -> None:
    while _started:
        process = _started.pop()
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_for(trace_file: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = traced_env(str(trace_file), service_name="coldstart-test")
    env["OTEL_PYTHON_COLDSTART_SPOOL_DIR"] = str(trace_file.parent / "spool")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _default_stop_signals() -> None:
    # A shell's background job (nohup, `cmd &` in a script) starts with SIGINT or SIGHUP ignored,
    # and an ignored disposition is inherited: the servers under test must start as an
    # orchestrator's children do, with the default ones, or neither side dies by the signal.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def start(
    command: list[str], trace_file: Path, instrumented: bool, cwd: Path, **extra: str
) -> subprocess.Popen:
    """Start ``command`` (its first word a console script or python) as its users would."""
    if instrumented:
        command = [str(BIN / "opentelemetry-instrument"), *command]
        env = env_for(trace_file, extra)
    else:
        env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a signal for the server must not reach pytest
        preexec_fn=_default_stop_signals,
    )
    _started.append(process)
    return process


def get_first_response(url: str, process: subprocess.Popen, timeout: float = 60) -> tuple[str, int]:
    """Poll until the server answers; returns the body and the wall time (ns) of the answer."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"server exited with {process.returncode}: {out} {err}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read().decode()
                return body, time.time_ns()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def roots(trace_file: Path) -> list[dict[str, Any]]:
    """Every cold-start root span in the file, with its resource attributes merged in."""
    found = []
    if not trace_file.exists():
        return found
    for line in trace_file.read_text().splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue  # a line still being written by a live process
        for resource_spans in document.get("resourceSpans", []):
            resource = _attributes(resource_spans.get("resource", {}).get("attributes", []))
            for scope in resource_spans.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    if span["name"] == "coldstart":
                        found.append(
                            {
                                **resource,
                                **_attributes(span.get("attributes", [])),
                                "_start": int(span["startTimeUnixNano"]),
                                "_end": int(span["endTimeUnixNano"]),
                                "_trace": span["traceId"],
                                "_span": span["spanId"],
                                "_links": span.get("links", []),
                            }
                        )
    return found


def import_names(trace_file: Path, trace_id: str) -> set[str]:
    names = set()
    for line in trace_file.read_text().splitlines():
        for resource_spans in json.loads(line).get("resourceSpans", []):
            for scope in resource_spans.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    if span["traceId"] == trace_id and span["name"].startswith("import "):
                        names.add(span["name"][len("import ") :])
    return names


def _attributes(raw: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for item in raw:
        value = item.get("value", {})
        out[item["key"]] = next(iter(value.values()), None) if value else None
    return out


def wait_for_roots(trace_file: Path, count: int, timeout: float = 30, **match: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in roots(trace_file) if all(r.get(k) == v for k, v in match.items())]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str, str]:
    """Send ``sig``; returns the exit status, the rest of stdout and stderr (less the launcher's
    own informational line)."""
    os.kill(process.pid, sig)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"did not stop on {sig}: {out} {err}") from None
    return process.returncode, out, launcher_noise_removed(err)


def launcher_noise_removed(stderr: str) -> str:
    return "".join(
        line for line in stderr.splitlines(keepends=True) if not line.startswith("Configuration of ")
    )
