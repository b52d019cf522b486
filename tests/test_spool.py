"""The spool and the delivery bookkeeping, with the real SDK and in-memory exporters."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_coldstart import config
from otel_coldstart.deliver import export, otlp_json, spool


def make_spans(count: int = 5) -> list[ReadableSpan]:
    """Real SDK spans with every shape the cold-start trace uses."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "spool-test", "process.pid": 42}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("otel_coldstart", "1.2.3")
    with tracer.start_as_current_span("coldstart", start_time=1_000, kind=SpanKind.SERVER) as root:
        root.set_attributes(
            {
                "coldstart.count": 7,
                "ratio": 0.25,
                "ok": True,
                "args": ["a", "b"],
                "sizes": [1, 2],
                "empty": "",
            }
        )
        root.add_event("memory.snapshot", {"rss": 123_456_789_012, "label": "ready"}, timestamp=1_500)
        for index in range(count - 1):
            with tracer.start_as_current_span(f"import m{index}", start_time=2_000 + index) as child:
                if index == 0:
                    child.set_status(Status(StatusCode.ERROR, "ModuleNotFoundError: no"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_documents_become_the_same_spans_again() -> None:
    spans = make_spans()
    document = otlp_json.encode(spans)
    rebuilt = spool.spans_from_document(document)
    assert otlp_json.encode(rebuilt) == document
    by_name = {span.name: span for span in rebuilt}
    root = by_name["coldstart"]
    assert root.get_span_context().trace_id == spans[0].get_span_context().trace_id
    assert root.attributes["coldstart.count"] == 7 and root.attributes["args"] == ("a", "b")
    assert root.events[0].attributes["rss"] == 123_456_789_012
    assert root.kind is SpanKind.SERVER and root.resource.attributes["service.name"] == "spool-test"
    assert by_name["import m0"].status.status_code is StatusCode.ERROR
    assert by_name["import m0"].parent.span_id == root.get_span_context().span_id
    assert root.instrumentation_scope.version == "1.2.3"


def test_rebuilt_spans_encode_to_the_same_protobuf_the_exporter_sends() -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    spans = make_spans()
    rebuilt = spool.spans_from_document(otlp_json.encode(spans))
    order = {span.context.span_id: i for i, span in enumerate(spans)}
    rebuilt.sort(key=lambda span: order[span.context.span_id])
    assert encode_spans(rebuilt) == encode_spans(spans)


def test_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = spool.write_file(str(tmp_path / "spool"), "x.jsonl", b"{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "spool").st_mode) == 0o700
    assert not [name for name in os.listdir(tmp_path / "spool") if name.endswith(".tmp")]


def test_default_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert spool.default_dir() == str(tmp_path / "otel-coldstart" / "spool")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert spool.default_dir() == os.path.expanduser("~/.cache/otel-coldstart/spool")


def test_cap_drops_the_oldest_whole_files_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = str(tmp_path)
    names = [spool.free_name(f"{n:020d}-1-abcd") for n in (1, 2, 3)]
    for name in names:
        spool.write_file(directory, name, b"x" * 100)
    claimed = spool.write_file(directory, spool.claim_name(f"{0:020d}-1-abcd"), b"x" * 1000)
    dropped = spool.enforce_cap(directory, 250)
    assert [os.path.basename(p) for p in dropped] == names[:1]
    assert sorted(os.listdir(directory)) == sorted([*names[1:], os.path.basename(claimed)])
    assert "dropped the oldest cold start" in caplog.text


def test_a_file_is_claimed_by_one_taker_only(tmp_path: Path) -> None:
    spool.write_file(str(tmp_path), spool.free_name(spool.new_stem()), b"{}\n")
    (entry,) = spool.list_entries(str(tmp_path))
    results = []
    barrier = threading.Barrier(8)

    def take() -> None:
        barrier.wait()
        results.append(spool.claim(entry))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([r for r in results if r is not None]) == 1


def test_a_claim_is_stale_once_its_process_is_gone(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    stem = spool.new_stem()
    path = spool.write_file(str(tmp_path), f"{stem}.claim-{pid}-{spool._host()}", b"{}\n")
    spool.write_file(str(tmp_path), spool.claim_name(spool.new_stem()), b"{}\n")  # ours: alive
    entries = {entry.path: entry for entry in spool.list_entries(str(tmp_path))}
    assert entries[path].stale()
    assert [e.stale() for e in entries.values()].count(True) == 1


class Flaky(SpanExporter):
    """Acknowledges chunks until ``fail_from``; records what it acknowledged."""

    def __init__(self, fail_from: int = 10**9, gate: threading.Event | None = None) -> None:
        self.calls = 0
        self.fail_from = fail_from
        self.gate = gate
        self.acknowledged: list[int] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        if self.calls > self.fail_from:
            return SpanExportResult.FAILURE
        self.acknowledged.extend(span.context.span_id for span in spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def settings(tmp_path: Path, **overrides: Any) -> config.Settings:
    return config.Settings(spool_dir=str(tmp_path / "spool"), retry_s=0, **overrides)


def job_for(spans: list[ReadableSpan], values: config.Settings) -> export.Job:
    """A cold start on its way, with an OTLP write-ahead copy claimed (a raw copy's stand-in)."""
    job = export.job_for_spans(spans, values)
    assert job is not None
    return job


@pytest.fixture(autouse=True)
def fresh_export_state() -> Any:
    export.reset_after_fork()
    yield
    export.reset_after_fork()


def test_only_unacknowledged_chunks_are_spooled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "EXPORT_CHUNK", 2)
    spans = make_spans(5)  # chunks of 2, 2, 1
    flaky = Flaky(fail_from=1)
    values = settings(tmp_path)
    assert not export.deliver([flaky], job_for(spans, values), values)
    (entry,) = spool.list_entries(str(tmp_path / "spool"))
    assert entry.claimed_by is None
    documents = spool.read_documents(entry.path)
    spooled = {s.context.span_id for d in documents for s in spool.spans_from_document(d)}
    assert len(documents) == 2 and len(spooled) == 3
    assert spooled.isdisjoint(flaky.acknowledged) and len(flaky.acknowledged) == 2


def test_delivered_trace_leaves_no_file(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    values = settings(tmp_path)
    assert export.deliver([exporter], job_for(make_spans(), values), values)
    assert len(exporter.get_finished_spans()) == 5
    assert os.listdir(tmp_path / "spool") == []  # the write-ahead claim is gone


def test_cut_off_spools_what_is_in_flight_and_a_late_ack_changes_nothing(tmp_path: Path) -> None:
    gate = threading.Event()
    hanging = Flaky(gate=gate)
    export.begin_exit(float("inf"))
    values = settings(tmp_path)
    sender = threading.Thread(target=export.deliver, args=([hanging], job_for(make_spans(), values), values))
    sender.start()
    while hanging.calls == 0:
        threading.Event().wait(0.01)
    (entry,) = spool.list_entries(str(tmp_path / "spool"))
    assert entry.claimed_by == (os.getpid(), spool._host())  # write-ahead, claimed
    written = export.cut_off()
    assert len(written) == 1 and spool.span_count(spool.read_documents(written[0])) == 5
    gate.set()  # the collector answers after all
    sender.join(5)
    assert [e.path for e in spool.list_entries(str(tmp_path / "spool"))] == written


def test_drain_sends_each_file_once_across_concurrent_drainers(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    for _ in range(6):
        spool.write_file(
            str(directory),
            spool.free_name(spool.new_stem()),
            otlp_json.encode_lines([otlp_json.encode(make_spans(3))]),
        )
    exporters = [InMemorySpanExporter() for _ in range(3)]
    threads = [threading.Thread(target=export.drain, args=([e], str(directory))) for e in exporters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [span.context.span_id for e in exporters for span in e.get_finished_spans()]
    assert len(ids) == 18 and len(set(ids)) == 18
    assert os.listdir(directory) == []


def test_drain_puts_a_file_back_when_the_collector_fails(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    path = spool.write_file(
        str(directory),
        spool.free_name(spool.new_stem()),
        otlp_json.encode_lines([otlp_json.encode(make_spans(3))]),
    )
    result = export.drain([Flaky(fail_from=0)], str(directory))
    assert result.failed == [path] and os.path.exists(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_drain_moves_an_unreadable_file_aside(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool.write_file(str(directory), spool.free_name(spool.new_stem()), b"not json\n")
    result = export.drain([InMemorySpanExporter()], str(directory))
    assert len(result.bad) == 1 and os.listdir(directory) == [os.path.basename(result.bad[0])]


def test_spool_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_COLDSTART_SPOOL_DIR", "/x/y")
    monkeypatch.setenv("OTEL_PYTHON_COLDSTART_SPOOL_MAX_BYTES", "lots")
    values, problems = config.load()
    assert values.spool_dir == "/x/y" and values.spool_max_bytes == 64 * 1024 * 1024
    assert problems == ["OTEL_PYTHON_COLDSTART_SPOOL_MAX_BYTES='lots' is not a whole number"]
    assert export.spool_settings(config.Settings(spool_dir="none")) == (None, 0)


def test_an_interrupted_write_is_recovered_if_whole_and_removed_if_partial(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    payload = otlp_json.encode_lines([otlp_json.encode(make_spans(3))])
    dead = 2**22 + 12345  # above the default pid_max: no such process
    whole = directory / f".{spool.claim_name(spool.new_stem())}.{dead}.tmp"
    whole.write_bytes(payload)
    partial = directory / f".{spool.free_name(spool.new_stem(), spool.RAW)}.{dead}.tmp"
    partial.write_bytes(b'{"format":"otel-coldstart-raw","vers')
    young = directory / f".{spool.free_name(spool.new_stem())}.{os.getpid()}.tmp"
    young.write_bytes(b"")  # ours, being written: left alone
    old = os.stat(whole).st_mtime - 60
    os.utime(whole, (old, old))
    os.utime(partial, (old, old))
    exporter = InMemorySpanExporter()
    result = export.drain([exporter], str(directory))
    assert len(result.recovered) == 1 and result.bad == [str(partial)]
    assert result.sent == result.recovered and len(exporter.get_finished_spans()) == 3
    assert os.listdir(directory) == [young.name]


def test_raw_copy_builds_the_same_trace_anywhere() -> None:
    import json

    from otel_coldstart.deliver import raw_copy, sdk_setup
    from otel_coldstart.record import module_info
    from otel_coldstart.record.timeline import ImportRecord, Record, Timeline

    tl = Timeline("start")
    base = tl.mono_anchor_ns
    parent = ImportRecord("json", base + 10, None, 1, False)
    parent.end, (parent.spec, parent.file) = base + 500, module_info.spec_and_file(json)
    child = ImportRecord("json.decoder", base + 20, parent, 1, False)
    child.end, child.error = base + 400, ("ImportError", "boom")
    service = Record("service", "db", base + 600, None, 1, {"coldstart.service.name": "db"})
    service.end = base + 900
    tl.imports.extend([parent, child])
    tl.records.append(service)
    tl.thread_names = {1: "MainThread"}
    tl.ready_ns, tl.ready_trigger = base + 1000, "explicit"
    raw = raw_copy.snapshot(
        tl, process_start_ns=tl.wall_anchor_ns - 10**6, resource={"service.name": "x"}, trace_file=None
    )
    again = raw_copy.decode(raw_copy.encode(raw))
    first, second = sdk_setup.build_from_raw(raw), sdk_setup.build_from_raw(again)
    assert [(s.name, s.context.span_id, s.parent and s.parent.span_id) for s in first] == [
        (s.name, s.context.span_id, s.parent and s.parent.span_id) for s in second
    ]
    resource = sdk_setup.fixed_resource({"service.name": "x"})
    direct = sdk_setup.build_spans(tl, resource, raw["process_start_ns"], id_seed=raw["id_seed"])
    assert [(s.name, dict(s.attributes or {}), s.start_time, s.end_time) for s in direct] == [
        (s.name, dict(s.attributes or {}), s.start_time, s.end_time) for s in first
    ]
    names = {s.name for s in first}
    assert {"coldstart", "import json", "import json.decoder", "db"} <= names
    assert first[0].resource.attributes["service.name"] == "x"
    json_span = next(s for s in first if s.name == "import json")
    assert json_span.attributes["code.file.path"] == json.__file__


def test_spool_names_are_read_without_re_as_the_patterns_read_them() -> None:
    """``parse_name`` (the exit's path, no ``re``) agrees with the free and claimed patterns on
    every name built from the pieces spool names are made of (ASCII: we write no other digits)."""
    import itertools

    numbers, hexes = ["1733", "42", "", "x", "1a"], ["abc", "ABC", "", "a-b", "0f"]
    extensions = ["raw", "raw2", "jsonl", "claim-12-h", "rawclaim-3-h.x", "raw2claim-4-h", "claim--h"]
    extensions += ["claim-1x-h", "claim-12", "raw3", "raw2.rejected", "raw2claim-"]
    extensions += ["raw.rejected", "jsonl.x", "claim-12-", "rawclaim-7-a-b", "claims-1-h", ""]
    names = {
        f"{lead}{a}-{b}-{c}.{ext}"
        for lead, a, b, c, ext in itertools.product(["", "."], numbers, numbers, hexes, extensions)
    }
    for name in names:
        free, claimed = spool._pattern("free").match(name), spool._pattern("claimed").match(name)
        if free:
            want: object = (free.group("stem"), None)
        elif claimed:
            want = (claimed.group("stem"), (int(claimed.group("pid")), claimed.group("host")))
        else:
            want = None
        assert spool.parse_name(name) == want, name
    assert sum(spool.parse_name(name) is not None for name in names) > 20
