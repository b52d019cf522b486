"""Timeline -> spans with the real SDK and an in-memory exporter; and spans -> OTLP JSON."""

from __future__ import annotations

import json
import sys
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_coldstart.deliver import otlp_json, spans
from otel_coldstart.record import timeline
from otel_coldstart.record.timeline import ImportRecord, Timeline


def _import(
    name: str,
    start: int,
    end: int,
    parent: ImportRecord | None,
    tid: int,
    module: object = None,
    via_import_module: bool = False,
) -> ImportRecord:
    record = ImportRecord(name, start, parent, tid, via_import_module)
    record.end = end
    if module is not None:
        record.spec, record.file = module.__spec__, module.__file__
    return record


def make_timeline() -> Timeline:
    tl = Timeline("launcher")
    base = tl.hook_installed_ns
    ms = 1_000_000
    json_mod = sys.modules["json"]
    decoder = sys.modules["json.decoder"]
    tid = next(iter(tl.thread_names))
    top = _import("json", base + 2 * ms, base + 10 * ms, None, tid, module=json_mod)
    child = _import("json.decoder", base + 3 * ms, base + 6 * ms, top, tid, module=decoder)
    tiny = _import("tiny_mod", base + 7 * ms, base + 7 * ms + 1000, top, tid, via_import_module=True)
    failed = _import("missing_mod", base + 11 * ms, base + 12 * ms, None, tid)
    failed.error = ("ModuleNotFoundError", "No module named 'missing_mod'")
    in_flight = _import("slow_mod", base + 13 * ms, 0, None, tid)
    tl.imports.extend([top, child, tiny, failed, in_flight])
    tl.marks["launcher_done"] = base + 1 * ms
    tl.ready_ns = base + 20 * ms
    tl.ready_trigger = "explicit"
    return tl


@pytest.fixture
def exporter():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter.tracer = provider.get_tracer("test")
    return exporter


def test_tree_shape_times_and_attributes(exporter):
    tl = make_timeline()
    process_start = tl.to_epoch_ns(tl.hook_installed_ns) - 300_000_000
    spans.build(tl, exporter.tracer, process_start)
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    root = by_name["coldstart"]
    assert root.parent is None
    assert root.start_time == process_start
    assert root.end_time == tl.to_epoch_ns(tl.ready_ns)
    assert root.attributes["coldstart.ready.trigger"] == "explicit"
    assert root.attributes["coldstart.imports.count"] == 5
    assert root.attributes["coldstart.bundle.size"] > 0

    boot = by_name["coldstart.boot"]
    assert boot.parent.span_id == root.context.span_id
    assert boot.end_time - boot.start_time == 300_000_000
    assert boot.attributes["coldstart.prehook.module_count"] == len(tl.prehook_modules)

    main = by_name["coldstart.main"]
    launcher = by_name["coldstart.launcher"]
    assert launcher.end_time == main.start_time
    top = by_name["import json"]
    assert top.parent.span_id == main.context.span_id
    assert by_name["import json.decoder"].parent.span_id == top.context.span_id
    assert top.attributes["code.file.path"].endswith("json/__init__.py")
    assert top.attributes["coldstart.module.kind"] == "package"
    assert top.attributes["coldstart.module.size"] > 0
    assert by_name["import json.decoder"].attributes["coldstart.module.kind"] == "source"
    assert by_name["import tiny_mod"].attributes["coldstart.import.api"] == "import_module"

    failed = by_name["import missing_mod"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["coldstart.import.outcome"] == "error"
    assert failed.events[0].attributes["exception.type"] == "ModuleNotFoundError"

    slow = by_name["import slow_mod"]
    assert slow.attributes["coldstart.import.incomplete"] is True
    assert slow.end_time == root.end_time
    # Every span belongs to the one cold-start trace.
    assert {s.context.trace_id for s in exporter.get_finished_spans()} == {root.context.trace_id}


def test_minimum_duration_filter_keeps_the_counts(exporter):
    tl = make_timeline()
    spans.build(tl, exporter.tracer, time.time_ns() - 10**9, min_import_ns=2_000_000)
    names = {s.name for s in exporter.get_finished_spans()}
    assert "import tiny_mod" not in names and "import missing_mod" not in names
    assert {"import json", "import json.decoder", "import slow_mod"} <= names
    root = next(s for s in exporter.get_finished_spans() if s.name == "coldstart")
    assert root.attributes["coldstart.imports.count"] == 5
    assert root.attributes["coldstart.imports.recorded"] == 3


def test_otlp_json_uses_hex_ids_string_int64_and_integer_enums(exporter):
    spans.build(make_timeline(), exporter.tracer, time.time_ns() - 10**9)
    finished = exporter.get_finished_spans()
    document = json.loads(json.dumps(otlp_json.encode(finished)))
    encoded = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert len(encoded) == len(finished)
    root = next(s for s in encoded if s["name"] == "coldstart")
    assert len(root["traceId"]) == 32 and int(root["traceId"], 16)
    assert len(root["spanId"]) == 16 and "parentSpanId" not in root
    assert isinstance(root["startTimeUnixNano"], str)
    count = next(a for a in root["attributes"] if a["key"] == "coldstart.imports.count")
    assert count["value"] == {"intValue": "5"}
    failed = next(s for s in encoded if s["name"] == "import missing_mod")
    assert failed["status"]["code"] == 2 and failed["kind"] == 1


def test_timeline_freeze_happens_once():
    saved = (timeline.state.timeline, timeline.state.ready)
    try:
        timeline.state.timeline = Timeline("test")
        timeline.state.ready = False
        first = timeline.freeze("explicit")
        assert first is not None and first.ready_trigger == "explicit"
        assert timeline.freeze("exit") is None
    finally:
        timeline.state.timeline, timeline.state.ready = saved


def test_imports_after_ready_are_live_spans_under_the_current_span(exporter, tmp_path, monkeypatch):
    """After ready an import is a live span where it happened (a request, say), errors included."""
    from otel_coldstart.record import imports

    (tmp_path / "late_mod.py").write_text("import late_child\n")
    (tmp_path / "late_child.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    handler = spans.make_live_import_handler(exporter.tracer, timeline.suppressed)
    monkeypatch.setattr(timeline.state, "timeline", None)  # install() begins one; leave none behind
    installed = imports.install("start")
    monkeypatch.setattr(timeline.state, "ready", True)
    monkeypatch.setattr(imports, "live_handler", handler)
    try:
        with exporter.tracer.start_as_current_span("GET /orders"):
            import late_mod  # noqa: F401

            with pytest.raises(ModuleNotFoundError):
                import late_missing  # noqa: F401
    finally:
        if installed:
            imports.uninstall()
        sys.modules.pop("late_mod", None)
        sys.modules.pop("late_child", None)
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    request = by_name["GET /orders"]
    late, child = by_name["import late_mod"], by_name["import late_child"]
    assert late.parent.span_id == request.context.span_id
    assert child.parent.span_id == late.context.span_id
    assert late.attributes["code.file.path"].endswith("late_mod.py")
    assert late.attributes["coldstart.phase"] == "after_ready"
    missing = by_name["import late_missing"]
    assert missing.status.status_code is StatusCode.ERROR
    assert missing.parent.span_id == request.context.span_id
