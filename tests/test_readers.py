"""Readers: every accepted format becomes the same trace model; bad input is one clear TraceError."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from fixtures.builder import shop, to_jaeger_classic, to_jaeger_v3, trace_id, write_lines

from otel_coldstart.validate import readers
from otel_coldstart.validate.model import TraceError

JAEGER_SAMPLES = Path(__file__).parent / "fixtures" / "jaeger"


def _same_tree(a, b) -> None:
    """Two readings of one trace: same span names, parents and (µs-rounded) durations."""
    assert a.trace_id == b.trace_id
    shape = lambda t: sorted(  # noqa: E731
        (s.name, s.parent.name if s.parent else None, s.duration_ns // 1000) for s in t.spans
    )
    assert shape(a) == shape(b)


def test_otlp_lines_document_and_gzip_read_the_same(tmp_path: Path) -> None:
    document = shop()
    lines = write_lines(tmp_path / "t.jsonl", document)
    whole = tmp_path / "t.json"
    whole.write_text(json.dumps(document, indent=2))
    gz = write_lines(tmp_path / "t.jsonl.gz", document, gz=True)
    fmt_lines, (t1,) = readers.read_file(str(lines))
    fmt_doc, (t2,) = readers.read_file(str(whole))
    fmt_gz, (t3,) = readers.read_file(str(gz))
    assert fmt_lines == readers.OTLP_DOCUMENT  # one line holding one document is a whole document
    assert fmt_doc == readers.OTLP_DOCUMENT and fmt_gz == fmt_lines
    _same_tree(t1, t2)
    _same_tree(t1, t3)
    assert t1.root.name == "coldstart" and t1.service_name == "shop"


def test_several_lines_are_otlp_lines_and_several_traces(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", shop(), shop(scale=1.1))
    fmt, traces = readers.read_file(str(path))
    assert fmt == readers.OTLP_LINES
    assert len(traces) == 2 and traces[0].root.start_ns <= traces[1].root.start_ns


def test_jaeger_v3_and_classic_shapes_read_like_otlp(tmp_path: Path) -> None:
    document = shop()
    (tmp_path / "v3.json").write_text(json.dumps(to_jaeger_v3(document)))
    (tmp_path / "classic.json").write_text(json.dumps(to_jaeger_classic(document)))
    # The UI's "Download JSON" of one trace: the bare trace object.
    (tmp_path / "ui.json").write_text(json.dumps(to_jaeger_classic(document)["data"][0]))
    _, (reference,) = readers.read_file(str(write_lines(tmp_path / "t.jsonl", document)))
    for name, expected in (
        ("v3.json", readers.JAEGER_V3),
        ("classic.json", readers.JAEGER_CLASSIC),
        ("ui.json", readers.JAEGER_UI_TRACE),
    ):
        fmt, (found,) = readers.read_file(str(tmp_path / name))
        assert fmt == expected
        _same_tree(reference, found)
        root = found.root
        assert root.attributes["coldstart.memory.peak_rss"] == 85_000_000
        failed = [s for s in found.spans if s.name == "import ujson"]
        assert failed and failed[0].status_code == 2


def test_real_jaeger_ui_sample_parses_its_edge_cases() -> None:
    """Jaeger's own fixture: duplicate span ids, cross-trace reference, FOLLOWS_FROM, int64 as string."""
    document = json.loads((JAEGER_SAMPLES / "ui_01.json").read_text())
    fmt, spans = readers.document_spans(document, "ui_01.json")
    assert fmt == readers.JAEGER_UI_TRACE
    by_id = {}
    for span in spans:
        by_id.setdefault(span.span_id, span)
    reference_test = next(s for s in spans if s.name == "reference-test")
    # The CHILD_OF into trace ...ff is not a parent here; the in-trace CHILD_OF wins over FOLLOWS_FROM.
    assert reference_test.parent_id == "0000000000000002"
    tagged = next(s for s in spans if s.attributes.get("javascript_limit"))
    assert tagged.attributes["javascript_limit"] == 9223372036854775222
    assert tagged.attributes["error"] is True and tagged.status_code == 2
    assert spans[0].resource["service.name"] == "service-x"


def test_real_jaeger_sample_without_a_coldstart_root_is_a_clear_error(tmp_path: Path) -> None:
    path = JAEGER_SAMPLES / "ui_01.json"
    with pytest.raises(TraceError, match="no cold-start trace"):
        readers.read_file(str(path))


def test_real_jaeger_v3_sample_with_no_times_parses() -> None:
    document = json.loads((JAEGER_SAMPLES / "v3_get_trace.json").read_text())
    fmt, spans = readers.document_spans(document, "v3")
    assert fmt == readers.JAEGER_V3
    assert spans[0].name == "foobar" and spans[0].status_code == 2 and spans[0].duration_ns == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"   \n\n", "is empty"),
        (b"{not json", "malformed JSON"),
        (b'{"resourceSpans": [1]}', "not an object"),
        (b'{"hello": "world"}', "not a trace document"),
        (b"[1, 2, 3]", "not a trace document"),
        (b'{"error": {"httpCode": 404, "message": "No traces found"}}', "No traces found"),
        (
            b'{"data": null, "errors": [{"code": 404, "msg": "trace not found"}]}',
            "not a trace document|errors",
        ),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"\x1f\x8b\x08\x00garbage", "gzip"),
        (b"[" * 100_000, "nested too deeply|malformed"),
    ],
)
def test_bad_files_are_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=message):
        readers.read_file(str(path))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="not found"):
        readers.read_file(str(tmp_path / "nope.jsonl"))
    with pytest.raises(TraceError, match="directory"):
        readers.read_file(str(tmp_path))


def test_truncated_last_line_is_dropped_with_a_warning(tmp_path: Path) -> None:
    first, second = shop(), shop(scale=1.2)
    text = json.dumps(first) + "\n" + json.dumps(second)[:500]  # writer killed mid-line
    path = tmp_path / "t.jsonl"
    path.write_text(text)
    _, traces = readers.read_file(str(path))
    assert [t.trace_id for t in traces] == [trace_id(first)]
    assert any("truncated" in w for w in traces[0].warnings)


def test_truncated_middle_line_is_an_error(tmp_path: Path) -> None:
    text = json.dumps(shop())[:300] + "\n" + json.dumps(shop()) + "\n"
    path = tmp_path / "t.jsonl"
    path.write_text(text)
    with pytest.raises(TraceError, match="line 1: malformed JSON"):
        readers.read_file(str(path))


def test_truncated_gzip_is_an_error(tmp_path: Path) -> None:
    data = gzip.compress((json.dumps(shop()) + "\n").encode())
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match="gzip"):
        readers.read_file(str(path))


def test_base64_ids_from_the_generic_protobuf_mapping_are_accepted(tmp_path: Path) -> None:
    import base64

    document = shop()
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    path = write_lines(tmp_path / "b64.jsonl", document)
    _, (trace,) = readers.read_file(str(path))
    assert len(trace.root.children) == 3


def test_bad_id_and_bad_number_are_clear(tmp_path: Path) -> None:
    document = shop()
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["startTimeUnixNano"] = "soon"
    path = write_lines(tmp_path / "t.jsonl", document)
    with pytest.raises(TraceError, match="startTimeUnixNano is not an integer"):
        readers.read_file(str(path))
    document = shop()
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "xyz"
    path = write_lines(tmp_path / "t.jsonl", document)
    with pytest.raises(TraceError, match="spanId"):
        readers.read_file(str(path))


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_streaming_in_any_chunk_size_reads_the_same(tmp_path: Path, size: int) -> None:
    """Values, keys, numbers and UTF-8 sequences cut at every possible chunk boundary."""
    first, second = shop(service="ünïcode"), shop(scale=1.3)
    text = (json.dumps(first, ensure_ascii=False) + "\n" + json.dumps(second, indent=1) + "\n").encode()
    _, reference = readers.read_file(str(write_lines(tmp_path / "t.jsonl", first, second)))
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    fmt, traces = readers.read_chunks(chunks, "chunks")
    assert fmt == readers.OTLP_LINES and len(traces) == 2
    for a, b in zip(reference, traces, strict=True):
        _same_tree(a, b)
        assert b.service_name == a.service_name
    assert traces[0].service_name == "ünïcode"


def test_resource_after_the_spans_still_applies(tmp_path: Path) -> None:
    document = shop()
    resource_spans = document["resourceSpans"][0]
    document["resourceSpans"][0] = {"scopeSpans": resource_spans["scopeSpans"], **resource_spans}
    assert next(iter(document["resourceSpans"][0])) == "scopeSpans"
    _, (trace,) = readers.read_file(str(write_lines(tmp_path / "t.jsonl", document)))
    assert trace.service_name == "shop"


def test_malformed_json_names_the_line_it_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(shop()) + "\n" + json.dumps(shop(), indent=2).replace('"name"', "name", 3))
    with pytest.raises(TraceError, match=r"line 2: malformed JSON \(.* on line \d+\)"):
        readers.read_file(str(path))
