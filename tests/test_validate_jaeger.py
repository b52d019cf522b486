"""Jaeger as a source, against a real HTTP server on loopback serving Jaeger-shaped answers."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fixtures.builder import T0, shop, to_jaeger_classic, to_jaeger_v3, trace_id

from otel_coldstart.cli import main
from otel_coldstart.validate import analysis, gather, readers, recommend, result, sources, targets
from otel_coldstart.validate import jaeger as jaeger_module
from otel_coldstart.validate.jaeger import JaegerClient, JaegerError, parse_since
from otel_coldstart.validate.model import TraceError

Answer = tuple[int, str, bytes]
NOT_FOUND_V3 = (404, "text/plain; charset=utf-8", b'{"error":{"httpCode":404,"message":"No traces found"}}\n')
GO_404 = (404, "text/plain; charset=utf-8", b"404 page not found\n")


def _json(document: object, status: int = 200) -> Answer:
    return status, "application/json", json.dumps(document).encode()


class FakeJaeger:
    """Routes: path -> callable(query) -> (status, content type, body). Records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[dict[str, list[str]]], Answer]] = {}
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parts.query)
                fake.requests.append((parts.path, query))
                route = fake.routes.get(parts.path)
                status, content_type, body = route(query) if route else GO_404
                if status == 0:  # drop the connection without an answer
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that timed out and left: expected in the timeout test

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


@pytest.fixture
def jaeger() -> Iterator[FakeJaeger]:
    fake = FakeJaeger()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _runs(n: int) -> list[dict]:
    return [shop(scale=1 + i * 0.1, t0=T0 + i * 60_000_000_000) for i in range(n)]


def test_v3_search_groups_merged_traces_and_sends_the_documented_query(jaeger: FakeJaeger) -> None:
    runs = _runs(3)
    jaeger.routes["/api/v3/traces"] = lambda q: _json(to_jaeger_v3(*runs))
    loaded = sources.load(sources.JaegerQuery(jaeger.url, service="shop", limit=5, since="2h"))
    assert [t.trace_id for t in loaded.traces] == [trace_id(r) for r in runs]
    assert loaded.fmt.startswith("Jaeger v3 API")
    path, query = jaeger.requests[0]
    assert path == "/api/v3/traces"
    assert query["query.service_name"] == ["shop"] and query["query.operation_name"] == ["coldstart"]
    assert query["query.search_depth"] == ["5"]
    low = datetime.fromisoformat(query["query.start_time_min"][0].replace("Z", "+00:00"))
    high = datetime.fromisoformat(query["query.start_time_max"][0].replace("Z", "+00:00"))
    assert abs((high - low).total_seconds() - 7200) < 1
    assert jaeger.paths() == ["/api/v3/traces"]


def _ns(rfc3339: str) -> int:
    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole + "+00:00").timestamp())
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


def test_v3_search_pages_through_a_fleet(jaeger: FakeJaeger, monkeypatch) -> None:
    """250 cold starts, 40 per page, the newest 100 asked: pages move back in time, none is lost
    or counted twice, and a Jaeger that honours search_depth is never asked for more."""
    monkeypatch.setattr(jaeger_module, "PAGE_SIZE", 40)
    runs = [shop(scale=1 + (i % 7) * 0.05, t0=T0 - i * 1_000_000_000) for i in range(250)]  # newest first
    starts = [T0 - i * 1_000_000_000 for i in range(250)]
    asked: list[tuple[int, int]] = []

    def search(query: dict) -> Answer:
        depth, high = int(query["query.search_depth"][0]), _ns(query["query.start_time_max"][0])
        asked.append((depth, high))
        page = [run for run, start in zip(runs, starts, strict=True) if start <= high][:depth]
        return _json(to_jaeger_v3(*page)) if page else NOT_FOUND_V3

    jaeger.routes["/api/v3/traces"] = search
    now = datetime.fromtimestamp(T0 / 1e9 + 1, timezone.utc)
    client = JaegerClient(jaeger.url)
    _, spans = client.search("shop", limit=100, since_seconds=86400, now=now)
    got = {s.trace_id for s in spans}
    assert got == {trace_id(r) for r in runs[:118]}  # 40 + 39 + 39 new: each cursor trace comes twice
    assert [depth for depth, _ in asked] == [40, 40, 40]
    assert asked[1][1] == starts[39] and asked[2][1] == starts[78]
    loaded = sources.load(sources.JaegerQuery(jaeger.url, service="shop", limit=100, since="30d"))
    assert len(loaded.traces) == 100 and loaded.traces[-1].trace_id == trace_id(runs[0])


def test_v3_search_fetches_whole_a_trace_whose_root_is_missing(jaeger: FakeJaeger) -> None:
    complete, partial = _runs(2)
    cut = json.loads(json.dumps(partial))
    spans = cut["resourceSpans"][0]["scopeSpans"][0]["spans"]
    cut["resourceSpans"][0]["scopeSpans"][0]["spans"] = [s for s in spans if s["name"] != "coldstart"]
    jaeger.routes["/api/v3/traces"] = lambda q: _json(to_jaeger_v3(complete, cut))
    jaeger.routes[f"/api/v3/traces/{trace_id(partial)}"] = lambda q: _json(to_jaeger_v3(partial))
    loaded = sources.load(sources.JaegerQuery(jaeger.url, service="shop"))
    assert len(loaded.traces) == 2
    assert f"/api/v3/traces/{trace_id(partial)}" in jaeger.paths()


@pytest.mark.parametrize(
    "v3_answer",
    [GO_404, (200, "text/html", b"<!doctype html><html>Jaeger UI</html>"), (405, "text/plain", b"")],
    ids=["404-not-jaeger", "ui-html", "405"],
)
def test_classic_api_when_v3_is_absent(jaeger: FakeJaeger, v3_answer: Answer) -> None:
    runs = _runs(2)
    jaeger.routes["/api/v3/traces"] = lambda q: v3_answer
    classic = {"data": [t for r in runs for t in to_jaeger_classic(r)["data"]], "errors": None}
    jaeger.routes["/api/traces"] = lambda q: _json(classic)
    loaded = sources.load(sources.JaegerQuery(jaeger.url, service="shop", limit=7))
    assert loaded.fmt.startswith("Jaeger classic API") and len(loaded.traces) == 2
    _, query = jaeger.requests[-1]
    assert query["service"] == ["shop"] and query["operation"] == ["coldstart"] and query["limit"] == ["7"]
    assert int(query["end"][0]) - int(query["start"][0]) == 3600 * 1_000_000


def test_no_traces_is_a_clear_error(jaeger: FakeJaeger) -> None:
    jaeger.routes["/api/v3/traces"] = lambda q: NOT_FOUND_V3
    with pytest.raises(JaegerError, match="no cold-start traces of 'shop' in the last 1h"):
        sources.load(sources.JaegerQuery(jaeger.url, service="shop"))
    assert jaeger.paths() == ["/api/v3/traces"]  # "No traces found" is an answer, not a missing API


def test_trace_by_id_v3_then_classic_fallback(jaeger: FakeJaeger) -> None:
    run = _runs(1)[0]
    tid = trace_id(run)
    jaeger.routes[f"/api/v3/traces/{tid}"] = lambda q: _json(to_jaeger_v3(run))
    loaded = sources.load(sources.JaegerQuery(jaeger.url, trace_id=tid))
    assert loaded.traces[0].trace_id == tid and loaded.fmt.startswith("Jaeger v3")
    del jaeger.routes[f"/api/v3/traces/{tid}"]
    jaeger.routes[f"/api/traces/{tid}"] = lambda q: _json(to_jaeger_classic(run))
    loaded = sources.load(sources.JaegerQuery(jaeger.url, trace_id=tid))
    assert loaded.traces[0].trace_id == tid and loaded.fmt.startswith("Jaeger classic")


def test_unknown_trace_id(jaeger: FakeJaeger) -> None:
    jaeger.routes["/api/v3/traces/" + "a" * 32] = lambda q: (
        404,
        "text/plain",
        b'{"error":{"httpCode":404,"message":"trace not found"}}',
    )
    with pytest.raises(JaegerError, match=r"has no trace a{32}"):
        sources.load(sources.JaegerQuery(jaeger.url, trace_id="a" * 32))
    with pytest.raises(JaegerError, match="not a hex trace id"):
        sources.load(sources.JaegerQuery(jaeger.url, trace_id="not-an-id"))


def test_server_errors_are_retried_with_backoff(jaeger: FakeJaeger) -> None:
    run = _runs(1)[0]
    answers = iter([(503, "text/plain", b"busy"), (500, "text/plain", b"oops")])
    jaeger.routes["/api/v3/traces"] = lambda q: next(answers, None) or _json(to_jaeger_v3(run))
    client = JaegerClient(jaeger.url, timeout=5, retries=3, backoff=0.01)
    _, spans = client.search("shop")
    assert spans and client.requests == 3


def test_persistent_server_error_gives_up_with_one_line(jaeger: FakeJaeger) -> None:
    jaeger.routes["/api/v3/traces"] = lambda q: (500, "text/plain", b"database down")
    client = JaegerClient(jaeger.url, timeout=5, retries=2, backoff=0.01)
    with pytest.raises(JaegerError, match=r"HTTP 500 .*database down.*3 attempts") as info:
        client.search("shop")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((200, "text/plain", b"\x00\xffnot json at all"), "not JSON"),
        ((200, "application/json", b'{"data": [{"spans": 3}]}'), "not a trace"),
        ((200, "application/json", b'{"data": [1, 2]}'), "not a trace"),
        ((400, "application/json", b'{"errors": [{"code": 400, "msg": "bad service"}]}'), "bad service"),
    ],
)
def test_garbage_from_the_classic_api(jaeger: FakeJaeger, answer: Answer, message: str) -> None:
    jaeger.routes["/api/traces"] = lambda q: answer  # v3 absent: Go's plain 404
    with pytest.raises(JaegerError, match=message):
        sources.load(sources.JaegerQuery(jaeger.url, service="shop"))


def test_garbage_from_the_v3_api(jaeger: FakeJaeger) -> None:
    jaeger.routes["/api/v3/traces"] = lambda q: _json({"result": {"resourceSpans": "nope"}})
    with pytest.raises(JaegerError, match="not a trace"):
        sources.load(sources.JaegerQuery(jaeger.url, service="shop"))


def test_dropped_connection_is_retried_then_reported(jaeger: FakeJaeger) -> None:
    jaeger.routes["/api/v3/traces"] = lambda q: (0, "", b"")
    client = JaegerClient(jaeger.url, timeout=5, retries=1, backoff=0.01)
    with pytest.raises(JaegerError, match=r"cannot reach Jaeger.*2 attempts"):
        client.search("shop")


def test_unreachable_jaeger() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = JaegerClient(f"http://127.0.0.1:{port}", timeout=2, retries=1, backoff=0.01)
    with pytest.raises(JaegerError, match=r"cannot reach Jaeger at http://127.0.0.1:\d+ \(.*refused"):
        client.search("shop")


def test_timeout(jaeger: FakeJaeger) -> None:
    def slow(query: dict) -> Answer:
        time.sleep(1.5)
        return NOT_FOUND_V3

    jaeger.routes["/api/v3/traces"] = slow
    client = JaegerClient(jaeger.url, timeout=0.3, retries=1, backoff=0.01)
    with pytest.raises(JaegerError, match=r"no complete answer within 0.3 s; 2 attempts"):
        client.search("shop")


def test_a_trickling_jaeger_is_cut_at_the_total_deadline() -> None:
    """One byte every 0.2 s never trips a per-read timeout; the total deadline still ends it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def trickle(conn: socket.socket) -> None:
        with conn:
            conn.recv(4096)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 100:
                if stop.wait(0.2):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        code = main(["validate", "--jaeger", url, "--service", "shop", "--timeout", "1", "--retries", "1"])
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        server.close()
    # Two attempts of 1 s and a 0.5 s backoff: 2.5 s; generous for a busy machine, far below forever.
    assert code == 2 and 2.4 <= elapsed < 8


def test_parse_since() -> None:
    assert parse_since("90s") == 90 and parse_since("1h30m") == 5400 and parse_since("2d") == 172800
    for bad in ("", "1x", "h", "-1h", "0s"):
        with pytest.raises(ValueError):
            parse_since(bad)


def test_cli_validate_from_jaeger_judges_the_distribution(jaeger: FakeJaeger, capsys) -> None:
    runs = _runs(5)
    jaeger.routes["/api/v3/traces"] = lambda q: _json(to_jaeger_v3(*runs))
    code = main(["validate", "--jaeger", jaeger.url, "--service", "shop", "--format", "json", "--limit", "5"])
    document = json.loads(capsys.readouterr().out)
    assert document["source"]["trace_count"] == 5 and document["statistic"] == "p50"
    cold = next(t for t in document["targets"] if t["key"] == "max_cold_start_ms")
    assert len(cold["values"]) == 5 and cold["measured"] == pytest.approx(sorted(cold["values"])[2])
    assert code == (1 if document["result"] == "fail" else 0)


def test_cli_jaeger_errors_exit_2(jaeger: FakeJaeger, capsys) -> None:
    jaeger.routes["/api/v3/traces"] = lambda q: NOT_FOUND_V3
    assert main(["validate", "--jaeger", jaeger.url, "--service", "shop"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("otel-coldstart: error: ") and err.count("\n") == 1
    assert main(["validate", "--jaeger", jaeger.url]) == 2
    assert main(["validate", "--service", "shop"]) == 2
    assert main(["validate", "--jaeger", jaeger.url, "--service", "shop", "--since", "soon"]) == 2


def test_source_specs() -> None:
    spec = sources.parse_spec("http://jaeger:16686/base?service=shop&limit=3&since=2h")
    assert spec == sources.JaegerQuery("http://jaeger:16686/base", "shop", None, 3, "2h")
    assert sources.parse_spec("trace.jsonl") == "trace.jsonl"
    for bad in ("http://j:16686", "http://j:16686?service=a&colour=red", "http://j?service=a&limit=x"):
        with pytest.raises(TraceError):
            sources.parse_spec(bad)


# --- streamed classic answers, and a fleet from Jaeger in bounded memory ---------------------------

_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "jaeger"


def test_classic_answers_are_streamed_as_they_were_read_whole(jaeger: FakeJaeger) -> None:
    """Jaeger's own sample trace (duplicate span ids, a reference into another trace, an int64
    tag as a string...) and our fleet: the same spans whether streamed or parsed as one tree."""
    traces = [t for r in _runs(3) for t in to_jaeger_classic(r)["data"]]
    sample = _SAMPLES / "ui_01.json"
    if sample.is_file():
        traces.append(json.loads(sample.read_text()))
    answer = {"data": traces, "total": 0, "limit": 0, "offset": 0, "errors": None}
    jaeger.routes["/api/traces"] = lambda q: _json(answer)
    _, spans = JaegerClient(jaeger.url).search("shop", limit=10)
    _, whole = readers.document_spans(answer, "whole")
    assert spans == whole and len(spans) > 30


def test_classic_answer_naming_errors_after_its_data_is_still_an_error(jaeger: FakeJaeger) -> None:
    answer = {"data": to_jaeger_classic(_runs(1)[0])["data"], "errors": [{"code": 500, "msg": "shard down"}]}
    jaeger.routes["/api/traces"] = lambda q: _json(answer)
    with pytest.raises(JaegerError, match="shard down"):
        JaegerClient(jaeger.url).search("shop")


@pytest.mark.parametrize("api", ["v3", "classic"])
def test_a_jaeger_fleet_judged_compactly_gives_the_same_document(
    jaeger: FakeJaeger, monkeypatch, capsys, api: str
) -> None:
    """Pages of a fleet summarised as they arrive, every summary compacted: the same document as
    when every trace was held, the representative fetched again by its id."""
    runs = [shop(scale=1 + (i * 3 % 11) * 0.07, t0=T0 - i * 1_000_000_000) for i in range(11)]
    if api == "v3":
        monkeypatch.setattr(jaeger_module, "PAGE_SIZE", 4)

        def search(query: dict) -> Answer:
            depth, high = int(query["query.search_depth"][0]), _ns(query["query.start_time_max"][0])
            page = [run for i, run in enumerate(runs) if T0 - i * 1_000_000_000 <= high][:depth]
            return _json(to_jaeger_v3(*page)) if page else NOT_FOUND_V3

        jaeger.routes["/api/v3/traces"] = search
        for run in runs:
            jaeger.routes[f"/api/v3/traces/{trace_id(run)}"] = lambda q, run=run: _json(to_jaeger_v3(run))
    else:
        classic = {"data": [t for r in runs for t in to_jaeger_classic(r)["data"]], "errors": None}
        jaeger.routes["/api/traces"] = lambda q: _json(classic)
        for run in runs:
            jaeger.routes[f"/api/traces/{trace_id(run)}"] = lambda q, run=run: _json(to_jaeger_classic(run))
    query = sources.JaegerQuery(jaeger.url, service="shop", limit=9, since="30d")
    loaded = sources.load(query)
    summaries = [analysis.summarize(t) for t in loaded.traces]
    chosen = targets.Targets()
    shown = result.representative(summaries, "p50")
    whole = result.build(
        summaries,
        targets.judge(summaries, chosen, "p50"),
        recommend.recommend(shown),
        chosen,
        "defaults",
        "p50",
        loaded.description,
        loaded.fmt,
    )
    monkeypatch.setattr(gather, "KEEP_SPANS", 0)
    monkeypatch.chdir(Path(__file__).parent)  # no pyproject.toml targets
    main(
        [
            "validate",
            "--jaeger",
            jaeger.url,
            "--service",
            "shop",
            "--limit",
            "9",
            "--since",
            "30d",
            "--format",
            "json",
        ]
    )
    document = json.loads(capsys.readouterr().out)
    assert document == json.loads(json.dumps(whole))
    assert document["source"]["trace_count"] == 9
    # Every compacted cold start fetched again by its id is the one that was held whole.
    gathered = gather.gather([query], "p50", chosen, keep_spans=0)
    held = {s.trace.trace_id: s for s in summaries}
    compacted = [s for s in gathered.judged if s.compact]
    assert len(compacted) == 8
    for summary in compacted[:3]:
        again = gathered.full(summary)
        assert result._summary_document(again) == result._summary_document(held[summary.trace.trace_id])
