"""A loopback AWS Lambda Runtime API (2018-06-01) that freezes the runtime like Lambda does.

Endpoints: ``GET /runtime/invocation/next`` (an event, with the ``Lambda-Runtime-*`` headers),
``POST /runtime/invocation/{id}/response`` and ``.../error`` (202), ``POST /runtime/init/error``,
and for SnapStart ``GET /runtime/restore/next`` and ``POST /runtime/restore/error``.

Lambda freezes the sandbox as soon as the runtime asks for the next event after answering one.
So does this server: on such a request it calls ``on_freeze`` (a test takes its snapshot of what
has arrived by then), sends SIGSTOP to the runtime process, and holds the request until the test
calls ``thaw()`` (SIGCONT, then the next queued event is served). ``close()`` leaves no process
behind: SIGCONT, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:coldstart-fn"


@dataclass
class Answer:
    """What the runtime posted for one invocation."""

    request_id: str
    kind: str  # "response" or "error"
    body: bytes
    error_type: str | None
    at: float


@dataclass
class Freeze:
    number: int
    at: float
    #: Whatever ``on_freeze`` returned at that moment (e.g. the spans a receiver had by then).
    seen: Any = None


@dataclass
class RuntimeAPI:
    events: list[bytes] = field(default_factory=list)
    on_freeze: Callable[[], Any] | None = None
    #: SnapStart: how long the runtime sits in the "snapshot" (SIGSTOP) before the restore.
    snapshot_s: float = 0.0

    def __post_init__(self) -> None:
        self.pid: int | None = None
        self.answers: list[Answer] = []
        self.init_errors: list[bytes] = []
        self.restore_errors: list[bytes] = []
        self.freezes: list[Freeze] = []
        self.nexts: list[float] = []
        self.restores: list[float] = []
        self._cond = threading.Condition()
        self._pending = list(self.events)
        self._frozen = False
        self._closed = False
        self._answered_since_next = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == f"{PREFIX}/invocation/next":
                    answer = api._next()
                    if answer is None:
                        self.close_connection = True
                        return
                    self._reply(200, *answer)
                elif self.path == f"{PREFIX}/restore/next":
                    api._restore()
                    self._reply(200)
                else:
                    self._reply(404, b'{"errorType":"NotFound"}')

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path[len(PREFIX) :].strip("/").split("/")
                error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                if parts[:1] == ["invocation"] and len(parts) == 3 and parts[2] in ("response", "error"):
                    api._answer(Answer(parts[1], parts[2], body, error_type, time.time()))
                elif parts == ["init", "error"]:
                    api.init_errors.append(body)
                elif parts == ["restore", "error"]:
                    api.restore_errors.append(body)
                else:
                    self._reply(404)
                    return
                self._reply(202, b'{"status":"OK"}')

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def env(self, function_name: str = "coldstart-fn") -> dict[str, str]:
        """The variables Lambda gives a function's runtime."""
        return {
            "AWS_LAMBDA_RUNTIME_API": self.address,
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/25/[$LATEST]0123456789abcdef",
            "AWS_REGION": "eu-west-1",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }

    # --- the runtime's side ---------------------------------------------------------------------

    def _next(self) -> tuple[bytes, dict[str, str]] | None:
        with self._cond:
            self.nexts.append(time.time())
            if self._answered_since_next and self.pid is not None and not self._closed:
                seen = self.on_freeze() if self.on_freeze is not None else None
                os.kill(self.pid, signal.SIGSTOP)
                self._frozen = True
                self.freezes.append(Freeze(len(self.freezes) + 1, time.time(), seen))
                self._cond.notify_all()
            self._answered_since_next = False
            while not self._closed and (self._frozen or not self._pending):
                self._cond.wait(0.2)
            if self._closed:
                return None
            body = self._pending.pop(0)
        # Deterministic ids: two runs of the same events get the same ids, so answers compare equal.
        request_id = str(uuid.UUID(int=len(self.nexts)))
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30_000),
            "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
            "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
        }
        return body, headers

    def _answer(self, answer: Answer) -> None:
        with self._cond:
            self.answers.append(answer)
            self._answered_since_next = True
            self._cond.notify_all()

    def _restore(self) -> None:
        """SnapStart: the snapshot is taken now; the restore comes ``snapshot_s`` later."""
        if self.pid is not None and self.snapshot_s > 0:
            os.kill(self.pid, signal.SIGSTOP)
            time.sleep(self.snapshot_s)
            os.kill(self.pid, signal.SIGCONT)
        self.restores.append(time.time())

    # --- the test's side ------------------------------------------------------------------------

    def add_event(self, event: Any) -> None:
        with self._cond:
            self._pending.append(json.dumps(event).encode())
            self._cond.notify_all()

    def wait_frozen(self, count: int, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.freezes) < count and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return len(self.freezes) >= count

    def thaw(self) -> None:
        with self._cond:
            if self.pid is not None and self._frozen:
                os.kill(self.pid, signal.SIGCONT)
            self._frozen = False
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self.pid is not None:
            # SIGCONT first: whatever happens to the SIGKILL, nothing is left stopped behind a test.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> RuntimeAPI:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
