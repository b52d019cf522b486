"""OTLP AnyValue: one encoder, and the two decoders (otlp_json.py says why two) agreeing with it."""

from __future__ import annotations

import base64
import json

import pytest

from otel_coldstart.deliver import otlp_json
from otel_coldstart.validate import readers
from otel_coldstart.validate.model import TraceError

VALUES = [
    "text",
    "",
    0,
    -(2**63),
    2**63 - 1,
    1.5,
    True,
    False,
    b"\x00\xffbytes",
    ("a", "b"),
    (1, 2, 3),
    (1.5, -2.0),
    (True, False),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_the_spool_decoder_gives_back_what_was_encoded(value: object) -> None:
    # Through JSON text, as on disk: 64-bit integers travel as strings.
    raw = json.loads(json.dumps(otlp_json.any_value(value)))
    assert otlp_json.value_from_any(raw) == value
    assert type(otlp_json.value_from_any(raw)) is type(value)


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_the_validator_decoder_gives_plain_json_values(value: object) -> None:
    raw = json.loads(json.dumps(otlp_json.any_value(value)))
    decoded = readers.any_value(raw)
    if isinstance(value, tuple):
        assert decoded == list(value)
    elif isinstance(value, bytes):
        assert decoded == base64.b64encode(value).decode("ascii")
    else:
        assert decoded == value and type(decoded) is type(value)


def test_attribute_lists_both_ways() -> None:
    attrs = {"coldstart.module.size": 12, "names": ("a", "b"), "ok": True}
    encoded = json.loads(json.dumps(otlp_json.attributes(attrs)))
    assert otlp_json.attributes_from(encoded) == attrs
    assert readers.attributes(encoded) == {"coldstart.module.size": 12, "names": ["a", "b"], "ok": True}


@pytest.mark.parametrize(
    "raw",
    [{"intValue": "12x"}, {"doubleValue": "nan"}, {"arrayValue": []}, {"kvlistValue": "no"}],
    ids=repr,
)
def test_only_the_validator_distrusts_its_input(raw: dict) -> None:
    # The validator reads anybody's file: a bad value is one clear error, never a traceback.
    with pytest.raises(TraceError):
        readers.any_value(raw)
