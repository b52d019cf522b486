"""Property-based tests: whatever bytes or JSON arrive, every reader (OTLP lines, document, gzip,
Jaeger v3, classic and UI JSON) succeeds or raises TraceError, never anything else (no traceback
reaches the user); whatever it reads, judging it and diffing it against a real run raises nothing
either, and no verdict is computed on a root that lasts no time. Seeded with the known bad cases
(tests/fixtures/bad_input.py): NaN, infinities, negative and 400-digit numbers, inverted times."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from fixtures.bad_input import bad_documents
from fixtures.builder import shop, to_jaeger_classic, to_jaeger_v3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_coldstart.validate import analysis, compare, readers, recommend, result, targets
from otel_coldstart.validate.model import TraceError
from otel_coldstart.validate.outputs import diff_report

#: HYPOTHESIS_EXAMPLES=2000 for a deeper search than the quick default.
EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

#: The numbers that broke the validator before: NaN, infinities, negatives, 400-digit integers.
nasty_numbers = (
    st.floats()
    | st.sampled_from([float("nan"), float("inf"), -float("inf"), -1, 2**63, 10**400, -(10**400)])
    | st.sampled_from(["NaN", "Infinity", "-1", "9" * 400, "1e400", "0x10", " 12 ", "1_000"])
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | nasty_numbers | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)

KEYS = [
    "resourceSpans",
    "scopeSpans",
    "spans",
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "attributes",
    "key",
    "value",
    "stringValue",
    "intValue",
    "events",
    "status",
    "code",
    "result",
    "data",
    "traceID",
    "spanID",
    "references",
    "refType",
    "tags",
    "processes",
    "startTime",
    "duration",
    "logs",
    "fields",
    "error",
    "errors",
    "coldstart",
]

shaped = st.recursive(
    st.none() | st.integers() | st.text(alphabet="0123456789abcdef", max_size=32) | st.sampled_from(KEYS),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=40,
)


_BASE = [analysis.summarize(t) for t in readers.traces_from_spans(readers.otlp_spans(shop(), "base"), "base")]


def _judge(traces: list) -> None:
    """Everything the CLI does after reading: no exception may escape it, whatever was read."""
    summaries = [analysis.summarize(t) for t in traces]
    assert all(s.cold_start_ns > 0 for s in summaries), "a verdict on a root that lasts no time"
    verdicts = targets.judge(summaries, targets.Targets())
    shown = result.representative(summaries, "p50")
    document = result.build(
        summaries, verdicts, recommend.recommend(shown), targets.Targets(), "defaults", "p50", "t", "f"
    )
    json.dumps(document, allow_nan=False)  # the JSON output holds no NaN/Infinity either
    diff_report.render(compare.compare(_BASE, summaries, "p50", None), 15)


def _check(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(data)
    try:
        fmt, traces = readers.read_file(str(path))
    except TraceError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert fmt and traces and all(t.root is not None for t in traces)
    _judge(traces)


_BAD = bad_documents()


@pytest.mark.parametrize("index", range(len(_BAD)))
@pytest.mark.parametrize("shape", ["lines", "indented", "gzip", "jaeger_v3", "twice"])
def test_seeded_bad_cases_in_every_shape(tmp_path: Path, index: int, shape: str) -> None:
    document = _BAD[index]
    text = {
        "lines": json.dumps(document) + "\n",
        "indented": json.dumps(document, indent=2),
        "gzip": "",
        "jaeger_v3": json.dumps(to_jaeger_v3(document)),
        "twice": json.dumps(shop()) + "\n" + json.dumps(document) + "\n",
    }[shape]
    data = gzip.compress((json.dumps(document) + "\n").encode()) if shape == "gzip" else text.encode()
    path = tmp_path / "t.json"
    path.write_bytes(data)
    with pytest.raises(TraceError) as caught:
        readers.read_file(str(path))
    assert "\n" not in str(caught.value)


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes(tmp_path: Path, data: bytes) -> None:
    _check(tmp_path, data)


@SETTINGS
@given(json_values)
def test_any_json(tmp_path: Path, value: object) -> None:
    _check(tmp_path, json.dumps(value).encode())


@SETTINGS
@given(shaped)
def test_trace_shaped_json(tmp_path: Path, value: object) -> None:
    _check(tmp_path, json.dumps(value).encode())


_DOCUMENTS = [shop(), to_jaeger_v3(shop()), to_jaeger_classic(shop())]


@SETTINGS
@given(st.sampled_from(range(3)), st.data())
def test_mutated_real_traces(tmp_path: Path, which: int, data: st.DataObject) -> None:
    """A real trace with one value somewhere replaced by an arbitrary JSON value."""
    document = json.loads(json.dumps(_DOCUMENTS[which]))
    node = document
    for _ in range(data.draw(st.integers(1, 8))):
        if isinstance(node, dict) and node:
            key = data.draw(st.sampled_from(sorted(node)))
            if not isinstance(node[key], (dict, list)) or data.draw(st.booleans()):
                node[key] = data.draw(json_values)
                break
            node = node[key]
        elif isinstance(node, list) and node:
            index = data.draw(st.integers(0, len(node) - 1))
            if not isinstance(node[index], (dict, list)) or data.draw(st.booleans()):
                node[index] = data.draw(json_values)
                break
            node = node[index]
        else:
            break
    _check(tmp_path, json.dumps(document).encode())


@SETTINGS
@given(st.sampled_from(range(len(_BAD))), st.data())
def test_mutated_bad_traces(tmp_path: Path, which: int, data: st.DataObject) -> None:
    """The seeded bad cases with one more number replaced by a nasty one: still one clean line."""
    document = json.loads(json.dumps(_BAD[which]))
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    span = spans[data.draw(st.integers(0, len(spans) - 1))]
    field = data.draw(st.sampled_from(["startTimeUnixNano", "endTimeUnixNano", "attributes"]))
    if field == "attributes" and span.get("attributes"):
        item = span["attributes"][data.draw(st.integers(0, len(span["attributes"]) - 1))]
        item["value"] = {data.draw(st.sampled_from(["intValue", "doubleValue"])): data.draw(nasty_numbers)}
    else:
        span[field] = data.draw(nasty_numbers)
    _check(tmp_path, json.dumps(document).encode())


@SETTINGS
@given(st.integers(0, 5000))
def test_truncated_real_trace(tmp_path: Path, cut: int) -> None:
    text = json.dumps(_DOCUMENTS[0]) + "\n" + json.dumps(_DOCUMENTS[0])
    _check(tmp_path, text[:cut].encode())
