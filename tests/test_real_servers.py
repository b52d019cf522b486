"""Real servers, launched as their users launch them, under the launcher with no code change.

Each serving process must write its cold start while it serves, ending at or before the first
response, named by its detector; SIGTERM must end each with the status it has without us.
Plain and instrumented runs go side by side (different loopback ports) to keep wall time down.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import write
from live_process import (
    BIN,
    free_port,
    get_first_response,
    import_names,
    kill_started,
    roots,
    start,
    stop,
    wait_for_roots,
)

pytest.importorskip("uvicorn")
pytest.importorskip("gunicorn")
pytest.importorskip("flask")
pytest.importorskip("django")


@pytest.fixture(autouse=True)
def _no_leftover_processes():
    yield
    kill_started()


FASTAPI_APP = """\
import asyncio
import contextlib

from fastapi import FastAPI


@contextlib.asynccontextmanager
async def lifespan(app):
    await asyncio.sleep(0.2)  # start-up work the cold start must include
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/")
def hello():
    return {"ok": True}
"""

FLASK_APP = """\
from flask import Flask

import colorsys  # the app's own import, to see where it lands

app = Flask(__name__)


@app.get("/")
def hello():
    return "ok"
"""

DJANGO_FILES = {
    "manage.py": (
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(sys.argv)\n"
    ),
    "settings.py": (
        "SECRET_KEY = 'test-only'\nDEBUG = True\nALLOWED_HOSTS = ['*']\nROOT_URLCONF = 'urls'\n"
        "INSTALLED_APPS = []\nMIDDLEWARE = []\nDATABASES = {}\nUSE_TZ = True\n"
    ),
    "urls.py": (
        "from django.http import HttpResponse\nfrom django.urls import path\n"
        "urlpatterns = [path('', lambda request: HttpResponse('ok'))]\n"
    ),
}


@dataclass
class Served:
    roots: list[dict[str, Any]]
    first_response_ns: int
    started_ns: int
    trace_file: Path
    status_plain: int
    status_ours: int

    def serving(self) -> list[dict[str, Any]]:
        return self.serving_of(self.roots)

    @staticmethod
    def serving_of(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in found if r["coldstart.process.role"] in ("service", "worker")]


def serve_and_stop(tmp_path: Path, command: list[str], serving: int, **env: str) -> Served:
    """Run ``command`` (``{port}`` filled in) plain and under the launcher; wait for ``serving``
    cold starts from serving processes while the server runs; stop both with SIGTERM."""
    trace_file = tmp_path / "trace.jsonl"
    processes = {}
    ports = {}
    started = time.time_ns()
    for instrumented in (False, True):
        ports[instrumented] = port = free_port()
        processes[instrumented] = start(
            [part.format(port=port) for part in command], trace_file, instrumented, tmp_path, **env
        )
    try:
        _, first_response_ns = get_first_response(f"http://127.0.0.1:{ports[True]}/", processes[True])
        get_first_response(f"http://127.0.0.1:{ports[False]}/", processes[False])
        deadline = time.monotonic() + 60
        while len(Served.serving_of(roots(trace_file))) < serving and time.monotonic() < deadline:
            time.sleep(0.05)
        # Written while serving: the server is still up.
        assert processes[True].poll() is None
        statuses = {key: stop(process, signal.SIGTERM)[0] for key, process in processes.items()}
    finally:
        kill_started()
    served = Served(
        roots(trace_file), first_response_ns, started, trace_file, statuses[False], statuses[True]
    )
    _report(served, command)
    return served


def _report(served: Served, command: list[str]) -> None:
    """With OTEL_COLDSTART_SERVER_REPORT=FILE, one JSON line per server run (for the notes)."""
    path = os.environ.get("OTEL_COLDSTART_SERVER_REPORT")
    if not path:
        return
    serving = served.serving()
    line = {
        "command": " ".join(Path(command[0]).name if i == 0 else part for i, part in enumerate(command)),
        "triggers": sorted({r["coldstart.ready.trigger"] for r in served.roots}),
        "roles": sorted(r["coldstart.process.role"] for r in served.roots),
        "first_response_ms": round((served.first_response_ns - served.started_ns) / 1e6, 1),
        "cold_start_ms": [round((r["_end"] - r["_start"]) / 1e6, 1) for r in serving],
        "ready_before_response_ms": [round((served.first_response_ns - r["_end"]) / 1e6, 1) for r in serving],
        "sigterm_status_plain": served.status_plain,
        "sigterm_status_ours": served.status_ours,
    }
    with open(path, "a") as handle:
        handle.write(json.dumps(line) + "\n")


def assert_ready_before_first_response(served: Served, trigger: str, count: int) -> list[dict[str, Any]]:
    serving = served.serving()
    assert len(serving) == count, [
        (r["coldstart.process.role"], r["coldstart.ready.trigger"]) for r in served.roots
    ]
    assert {r["coldstart.ready.trigger"] for r in serving} == {trigger}
    assert min(r["_end"] for r in serving) <= served.first_response_ns
    assert served.status_ours == served.status_plain
    return serving


def test_uvicorn_fastapi(tmp_path: Path):
    write(tmp_path / "app.py", FASTAPI_APP)
    served = serve_and_stop(tmp_path, [str(BIN / "uvicorn"), "app:app", "--port", "{port}"], 1)
    (root,) = assert_ready_before_first_response(served, "uvicorn", 1)
    # Ready after the lifespan start-up, not at the first listen or the first request.
    assert root["_end"] - root["_start"] >= 200_000_000
    assert "fastapi" in import_names(served.trace_file, root["_trace"])


def test_uvicorn_workers_are_each_a_cold_start_and_the_supervisor_a_helper(tmp_path: Path):
    write(tmp_path / "app.py", FASTAPI_APP)
    served = serve_and_stop(
        tmp_path, [str(BIN / "uvicorn"), "app:app", "--port", "{port}", "--workers", "2"], 2
    )
    workers = assert_ready_before_first_response(served, "uvicorn", 2)
    assert {r["coldstart.process.role"] for r in workers} == {"worker"}
    supervisor = [r for r in served.roots if r["coldstart.process.role"] == "supervisor"]
    assert len(supervisor) == 1
    for worker in workers:
        assert worker["_links"][0]["traceId"] == supervisor[0]["_trace"]
        assert "fastapi" in import_names(served.trace_file, worker["_trace"])


def test_hypercorn_worker_and_its_supervisor(tmp_path: Path):
    write(tmp_path / "app.py", FASTAPI_APP)
    served = serve_and_stop(tmp_path, [str(BIN / "hypercorn"), "app:app", "--bind", "127.0.0.1:{port}"], 1)
    (worker,) = assert_ready_before_first_response(served, "hypercorn", 1)
    assert worker["coldstart.process.role"] == "worker"  # hypercorn serves from a spawned process
    (supervisor,) = [r for r in served.roots if r["coldstart.process.role"] == "supervisor"]
    assert supervisor["coldstart.ready.trigger"] == "hypercorn"
    assert worker["_links"][0]["traceId"] == supervisor["_trace"]


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_gunicorn_sync_workers(tmp_path: Path, preload: bool):
    write(tmp_path / "app.py", FLASK_APP)
    command = [str(BIN / "gunicorn"), "-w", "2", "-b", "127.0.0.1:{port}", "app:app"]
    if preload:
        command.insert(1, "--preload")
    served = serve_and_stop(tmp_path, command, 2)
    workers = assert_ready_before_first_response(served, "gunicorn", 2)
    (arbiter,) = [r for r in served.roots if r["coldstart.process.role"] == "supervisor"]
    arbiter_imports = import_names(served.trace_file, arbiter["_trace"])
    for worker in workers:
        assert worker["coldstart.process.role"] == "worker"
        assert worker["_links"][0]["traceId"] == arbiter["_trace"]
        # The app is imported where it is loaded: each worker, or the arbiter with --preload.
        worker_imports = import_names(served.trace_file, worker["_trace"])
        assert ("colorsys" in worker_imports) is not preload
    assert ("colorsys" in arbiter_imports) is preload


def test_gunicorn_uvicorn_worker(tmp_path: Path):
    write(tmp_path / "app.py", FASTAPI_APP)
    command = [str(BIN / "gunicorn"), "-w", "1", "-k", "uvicorn.workers.UvicornWorker"]
    served = serve_and_stop(tmp_path, [*command, "-b", "127.0.0.1:{port}", "app:app"], 1)
    (worker,) = assert_ready_before_first_response(served, "uvicorn", 1)
    assert worker["coldstart.process.role"] == "worker"


def test_flask_dev_server(tmp_path: Path):
    write(tmp_path / "app.py", FLASK_APP)
    served = serve_and_stop(tmp_path, [str(BIN / "flask"), "--app", "app", "run", "--port", "{port}"], 1)
    assert_ready_before_first_response(served, "werkzeug", 1)


def test_flask_dev_server_with_reloader(tmp_path: Path):
    write(tmp_path / "app.py", FLASK_APP)
    command = [str(BIN / "flask"), "--app", "app", "run", "--reload", "--port", "{port}"]
    served = serve_and_stop(tmp_path, command, 1)
    assert_ready_before_first_response(served, "werkzeug", 1)
    assert [r["coldstart.process.role"] for r in served.roots if r not in served.serving()] == ["reloader"]


@pytest.mark.parametrize("reload", [False, True], ids=["noreload", "autoreload"])
def test_django_runserver(tmp_path: Path, reload: bool):
    for name, text in DJANGO_FILES.items():
        write(tmp_path / name, text)
    command = [sys.executable, "manage.py", "runserver", "127.0.0.1:{port}"]
    if not reload:
        command.append("--noreload")
    served = serve_and_stop(tmp_path, command, 1)
    assert_ready_before_first_response(served, "django", 1)
    helpers = [r["coldstart.process.role"] for r in served.roots if r not in served.serving()]
    assert helpers == (["reloader"] if reload else [])


def test_http_server_module(tmp_path: Path):
    served = serve_and_stop(
        tmp_path, [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"], 1
    )
    assert_ready_before_first_response(served, "socketserver", 1)


GRPC_SERVER = """\
import time
from concurrent import futures

import grpc

import colorsys  # the app's own start-up

server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"""


def test_grpc_server(tmp_path: Path):
    pytest.importorskip("grpc")
    script = write(tmp_path / "server.py", GRPC_SERVER)
    statuses = {}
    for instrumented in (False, True):
        process = start([sys.executable, str(script)], tmp_path / "trace.jsonl", instrumented, tmp_path)
        assert process.stdout.readline().strip().isdigit()  # serving: start() returned
        if instrumented:
            (root,) = wait_for_roots(tmp_path / "trace.jsonl", 1)
            assert process.poll() is None  # written while serving
        statuses[instrumented] = stop(process, signal.SIGTERM)[0]
    assert root["coldstart.ready.trigger"] == "grpc"
    assert "colorsys" in import_names(tmp_path / "trace.jsonl", root["_trace"])
    assert statuses[True] == statuses[False]
