"""Property-based tests: whatever bytes or JSON arrive, readers succeed or raise TraceError, never
anything else (no traceback reaches the user)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fixtures.builder import shop, to_jaeger_classic, to_jaeger_v3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_coldstart.validate import readers
from otel_coldstart.validate.model import TraceError

#: HYPOTHESIS_EXAMPLES=2000 for a deeper search than the quick default.
EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
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


def _check(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(data)
    try:
        fmt, traces = readers.read_file(str(path))
    except TraceError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert fmt and traces and all(t.root is not None for t in traces)


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
@given(st.integers(0, 5000))
def test_truncated_real_trace(tmp_path: Path, cut: int) -> None:
    text = json.dumps(_DOCUMENTS[0]) + "\n" + json.dumps(_DOCUMENTS[0])
    _check(tmp_path, text[:cut].encode())
