"""``otlp_json.encode`` makes each document's JSON text alongside its mapping, and the trace file
is that text: it must be what ``json.dumps`` writes for the mapping, and the mapping what
``span_to_dict`` makes, whatever the spans hold."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_coldstart.deliver import light_trace, otlp_json

texts = st.text(max_size=8)
scalars = st.booleans() | st.integers() | st.floats() | texts | st.binary(max_size=4) | st.none()
values = scalars | st.lists(scalars, max_size=3).map(tuple)
attributes = st.dictionaries(texts, values, max_size=6)


class _Str(str):
    pass


@st.composite
def light_spans(draw):
    tracer = light_trace.LightTracer(light_trace.SeededIds(draw(st.integers(0, 2**32))), draw(attributes))
    parent_ids = draw(st.none() | st.tuples(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1)))
    root = tracer.root(
        draw(texts), draw(st.integers(0, 2**62)), draw(attributes), parent_ids, draw(attributes)
    )
    for _ in range(draw(st.integers(0, 2))):
        root.add_event(draw(texts), draw(attributes), draw(st.integers(1, 2**62)))
    spans = [root]
    for _ in range(draw(st.integers(0, 4))):
        child = tracer.child(
            draw(texts | texts.map(_Str)),
            draw(st.sampled_from(spans)),
            draw(st.integers(0, 2**62)),
            draw(attributes),
        )
        if draw(st.booleans()):
            tracer.set_error(child, draw(texts))
        child.set_attribute(draw(texts), draw(values))
        spans.append(child)
    for span in reversed(spans):
        span.end(draw(st.integers(0, 2**62)))
    return tracer.finished


def _reference(spans) -> dict:
    """``encode`` as it was before it made the text: ``span_to_dict`` per span."""
    first = spans[0]
    scope = first.instrumentation_scope
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": otlp_json.attributes(first.resource.attributes)},
                "scopeSpans": [
                    {
                        "scope": {"name": scope.name, "version": scope.version},
                        "spans": [otlp_json.span_to_dict(s) for s in spans],
                    }
                ],
            }
        ]
    }


@settings(max_examples=200)
@given(light_spans())
def test_the_text_is_what_json_writes_for_the_mapping(spans):
    document = otlp_json.encode(spans)
    assert document == _reference(spans)
    assert document.text == json.dumps(document, separators=(",", ":"))
    assert (
        otlp_json.encode_lines([document])
        == (json.dumps(_reference(spans), separators=(",", ":")) + "\n").encode()
    )
    # The trace file's text-only document (no mapping built) writes the very same line.
    text_only = otlp_json.encode(spans, mapping=False)
    assert text_only.text == document.text and dict(text_only) == {}
    assert otlp_json.encode_lines([text_only]) == otlp_json.encode_lines([document])


def test_a_plain_mapping_is_encoded_as_before():
    document = {"resourceSpans": [{"x": [1, "é", 2.5]}]}
    assert (
        otlp_json.encode_lines([document, dict(document)])
        == 2 * b'{"resourceSpans":[{"x":[1,"\\u00e9",2.5]}]}\n'
    )
