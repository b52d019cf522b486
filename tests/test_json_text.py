"""The exit's JSON writer (``deliver/json_text.py``) writes what ``json.dumps`` writes and reads
back what ``json.loads`` reads, and a traced ``python -c pass`` imports neither ``json`` nor what
``json`` would bring (``re``, ``enum``), nor ``random`` or ``signal``, from start to exit."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import auto_env, clean_env, parse_importtime
from hypothesis import given
from hypothesis import strategies as st

from otel_coldstart.deliver import json_text
from otel_coldstart.validate.readers import read_file

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5)
)


@given(values)
def test_dumps_writes_what_json_dumps_writes(value):
    assert json_text.dumps(value) == json.dumps(value, separators=(",", ":"))


@given(values)
def test_dumps_without_the_cycle_check_writes_the_same(value):
    # The trace file's documents skip json's cycle check (otlp_json.encode_lines): same text.
    assert json_text.dumps(value, check_circular=False) == json.dumps(value, separators=(",", ":"))


@given(values)
def test_loads_own_reads_what_json_loads_reads(value):
    text = json_text.dumps(value)
    # NaN is not equal to itself: compare the texts of what each read.
    assert json.dumps(json_text.loads_own(text)) == json.dumps(json.loads(text))


def test_unserializable_fails_as_in_json_and_default_is_used():
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        json_text.dumps({"a": object()})
    assert json_text.dumps({"a": {1, 2}}, default=sorted) == '{"a":[1,2]}'
    assert math.isinf(json_text.loads_own("[Infinity]")[0])


def test_text_not_its_own_is_read_by_json():
    assert json_text.loads_own(" [1, 2] ") == [1, 2]
    with pytest.raises(json.JSONDecodeError):
        json_text.loads_own("[1,")


def test_a_traced_pass_imports_no_json_re_enum_random_or_signal(tmp_path: Path):
    trace_file = tmp_path / "trace.jsonl"
    env = auto_env(trace_file, OTEL_PYTHON_COLDSTART_AUTO="1")

    def imported_by(environment: dict[str, str]) -> set[str]:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "pass"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return {name for name, _ in parse_importtime(done.stderr)}

    imported = imported_by(env)
    assert "otel_coldstart.deliver.light_trace" in imported  # the exit did write the trace
    # What this environment's own site imports (a .pth file may import re or enum) is not ours.
    ours = imported - imported_by(clean_env())
    assert ours.isdisjoint({"json", "re", "enum", "random", "signal"}), sorted(ours)
    assert len(read_file(str(trace_file))[1]) == 1
