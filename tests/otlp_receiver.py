"""Real OTLP receivers on loopback, for tests and benchmarks: gRPC and HTTP/protobuf.

Traces are kept span by span; metrics (``/v1/metrics``, ``MetricsService``) as data points.

Modes (switchable while running, and a receiver can move from ``down`` to ``up`` on the same port):

- ``up``: accept and acknowledge every export; the received spans are kept.
- ``down``: nothing listens on the port (connection refused).
- ``hang``: a TCP listener that accepts connections and never answers a byte (a wedged collector).
- ``error``: answer every export with a retryable error (gRPC UNAVAILABLE, HTTP 503), or a
  permanent one (``error500``: HTTP 500, gRPC INTERNAL).

``max_body`` (HTTP): answer 413 Payload Too Large to a request body above that many bytes, as a
collector with a request size limit does; the rest of the mode applies to smaller ones.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
import zlib
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

MODES = ("up", "down", "hang", "error", "error500")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    name: str
    service: str
    #: The protobuf span and its resource, decoded only when a test asks (the receiver must answer
    #: as fast as a collector would: exit-budget tests time the exporter against it).
    raw: Any = field(default=None, compare=False, repr=False)
    raw_resource: Any = field(default=None, compare=False, repr=False)

    @property
    def attributes(self) -> dict[str, Any]:
        return {kv.key: _value(kv.value) for kv in self.raw.attributes} if self.raw is not None else {}

    @property
    def resource(self) -> dict[str, Any]:
        if self.raw_resource is None:
            return {}
        return {kv.key: _value(kv.value) for kv in self.raw_resource.attributes}

    @property
    def kind(self) -> int:
        """The OTLP span kind (2: SERVER)."""
        return int(self.raw.kind) if self.raw is not None else 0

    @property
    def links(self) -> tuple[str, ...]:
        return tuple(link.span_id.hex() for link in self.raw.links) if self.raw is not None else ()


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def _spans(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    out = []
    for resource_spans in request.resource_spans:
        resource = resource_spans.resource
        service = next((kv.value.string_value for kv in resource.attributes if kv.key == "service.name"), "")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.append(
                    ReceivedSpan(span.trace_id.hex(), span.span_id.hex(), span.name, service, span, resource)
                )
    return out


@dataclass(frozen=True)
class ReceivedPoint:
    name: str
    unit: str
    #: The OTLP data field that carries it: gauge, sum, histogram...
    kind: str
    value: float
    service: str


def _points(request: metrics_service_pb2.ExportMetricsServiceRequest) -> list[ReceivedPoint]:
    out = []
    for resource_metrics in request.resource_metrics:
        service = next(
            (
                kv.value.string_value
                for kv in resource_metrics.resource.attributes
                if kv.key == "service.name"
            ),
            "",
        )
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                for point in getattr(metric, kind).data_points:
                    if kind == "histogram":
                        value = point.sum  # a histogram point has no single value; its sum
                    else:
                        value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                    out.append(ReceivedPoint(metric.name, metric.unit, kind, value, service))
    return out


class _HangListener:
    """Accept TCP connections and hold them open without reading or writing."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for conn in self.held:
            with contextlib.suppress(OSError):
                conn.close()
        self.thread.join(2)


class Receiver:
    """Base: mode switching, the received spans, a context manager that stops everything."""

    protocol = ""

    def __init__(self, mode: str = "up", port: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.port = port or free_port()
        self.mode = "down"
        self.requests = 0
        #: HTTP only: bodies above this many bytes get 413 (a collector's request size limit).
        self.max_body: int | None = None
        self.rejected = 0
        self._received: list[ReceivedSpan] = []
        self._points: list[ReceivedPoint] = []
        self._lock = threading.Lock()
        self._hang: _HangListener | None = None
        self.set_mode(mode)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The standard exporter variables that point an app at this receiver."""
        return {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": self.protocol,
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
        }

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._received)

    def _record(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        spans = _spans(request)
        with self._lock:
            self._received.extend(spans)

    def points(self) -> list[ReceivedPoint]:
        with self._lock:
            return list(self._points)

    def _record_metrics(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        points = _points(request)
        with self._lock:
            self._points.extend(points)

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.spans()
            if len(spans) >= count:
                return spans
            time.sleep(0.05)
        return self.spans()

    def set_mode(self, mode: str) -> None:
        if mode == self.mode:
            return
        self._stop_listening()
        self.mode = mode
        if mode == "hang":
            self._hang = _HangListener(self.port)
        elif mode != "down":
            self._start_server()

    def _stop_listening(self) -> None:
        if self._hang is not None:
            self._hang.close()
            self._hang = None
        self._stop_server()

    def _start_server(self) -> None:
        raise NotImplementedError

    def _stop_server(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop_listening()
        self.mode = "down"

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class GrpcReceiver(Receiver):
    """OTLP/gRPC: grpcio with opentelemetry-proto's ``TraceServiceServicer``."""

    protocol = "grpc"

    def __init__(self, mode: str = "up", port: int | None = None) -> None:
        self._server: Any = None
        super().__init__(mode, port)

    def _start_server(self) -> None:
        import grpc

        receiver = self

        class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                receiver.requests += 1
                if receiver.mode == "error":
                    context.abort(grpc.StatusCode.UNAVAILABLE, "receiver in error mode")
                if receiver.mode == "error500":
                    context.abort(grpc.StatusCode.INTERNAL, "receiver in error mode")
                receiver._record(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        class MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                if receiver.mode != "up":
                    context.abort(grpc.StatusCode.UNAVAILABLE, "receiver in error mode")
                receiver._record_metrics(request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsServicer(), server)
        server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(2)
            self._server = None


class HttpReceiver(Receiver):
    """OTLP/HTTP: ``POST /v1/traces`` with a protobuf body (gzip or deflate allowed)."""

    protocol = "http/protobuf"

    def __init__(self, mode: str = "up", port: int | None = None) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        super().__init__(mode, port)

    def _start_server(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path not in ("/v1/traces", "/v1/metrics"):
                    self._answer(404)
                    return
                receiver.requests += 1
                if receiver.max_body is not None and len(body) > receiver.max_body:
                    receiver.rejected += 1
                    self._answer(413)
                    return
                if receiver.mode == "error":
                    self._answer(503)
                    return
                if receiver.mode == "error500":
                    self._answer(500)
                    return
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path == "/v1/metrics":
                    metrics_request = metrics_service_pb2.ExportMetricsServiceRequest()
                    try:
                        metrics_request.ParseFromString(body)
                    except Exception:
                        self._answer(400)
                        return
                    receiver._record_metrics(metrics_request)
                    self._answer(200, metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString())
                    return
                request = trace_service_pb2.ExportTraceServiceRequest()
                try:
                    request.ParseFromString(body)
                except Exception:
                    self._answer(400)
                    return
                receiver._record(request)
                self._answer(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None


RECEIVERS = {"grpc": GrpcReceiver, "http": HttpReceiver}


def main() -> None:
    """``python tests/otlp_receiver.py grpc|http [--port N] [--mode M]``: a receiver to point apps at."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("protocol", choices=sorted(RECEIVERS))
    parser.add_argument("--port", type=int)
    parser.add_argument("--mode", choices=MODES, default="up")
    args = parser.parse_args()
    with RECEIVERS[args.protocol](args.mode, args.port) as receiver:
        print(f"{args.protocol} receiver ({args.mode}) on {receiver.endpoint}", flush=True)
        seen = 0
        try:
            while True:
                time.sleep(0.5)
                spans = receiver.spans()
                if len(spans) != seen:
                    print(f"{len(spans)} span(s) received", flush=True)
                    seen = len(spans)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
