"""The exit's light build (``light_trace.py``) is the hot part of a traced program's exit: its fast
paths must give exactly what the general ones give (the SDK's attribute rules, ``_set``) and the
span builder must read each module's file size once (a ``stat`` per import)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from otel_coldstart.deliver import light_trace, otlp_json, spans
from otel_coldstart.record import module_info
from otel_coldstart.record.timeline import ImportRecord, Timeline

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.tuples(inner) | st.dictionaries(st.text(), inner, max_size=3)
    ),
)
keys = st.text(max_size=6) | st.integers() | st.none()


class _Str(str):
    pass


def _through_set(attrs: dict) -> dict:
    out: dict = {}
    for key, value in attrs.items():
        light_trace._set(out, key, value)
    return out


@given(st.dictionaries(keys, values, max_size=140))
def test_attributes_are_what_set_makes_them(attrs):
    built = light_trace._attributes(attrs)
    expected = _through_set(attrs)
    assert built == expected
    assert list(built) == list(expected)  # the same order: the trace file lists them so


def test_attributes_of_odd_values_and_keys():
    attrs = {"": 1, "s": _Str("x"), "b": True, "o": object, "l": [1, [2]], "n": None, 3: "dropped"}
    assert light_trace._attributes(attrs) == _through_set(attrs)
    assert light_trace._attributes(None) == {} == light_trace._attributes({})


def test_attributes_past_the_limit_keep_the_newest():
    attrs = {f"k{n}": n for n in range(130)}
    built = light_trace._attributes(attrs)
    assert built == _through_set(attrs)
    assert len(built) == 128 and "k0" not in built and built["k129"] == 129


def test_any_value_of_strings():
    assert otlp_json.any_value("a") == {"stringValue": "a"}
    assert otlp_json.any_value(_Str("a")) == {"stringValue": "a"}
    assert type(otlp_json.any_value(_Str("a"))["stringValue"]) is str


def test_build_stats_each_module_once(tmp_path, monkeypatch):
    files = []
    for n in range(3):
        path = tmp_path / f"m{n}.py"
        path.write_text("x = 1\n" * (n + 1))
        files.append(str(path))
    tl = Timeline("test")
    for n, path in enumerate(files):
        record = ImportRecord(
            f"m{n}", tl.hook_installed_ns + 10 + n, None, next(iter(tl.thread_names)), False
        )
        record.spec = module_info.ModuleFacts("source", path)
        record.end = record.start + 5
        tl.imports.append(record)
    tl.ready_ns = tl.hook_installed_ns + 100
    tl.ready_trigger = "exit"
    calls = []
    real = module_info.describe

    def counting(spec, file):
        calls.append(spec)
        return real(spec, file)

    monkeypatch.setattr(module_info, "describe", counting)
    tracer = light_trace.LightTracer(light_trace.SeededIds(1), {})
    spans.build(tl, tracer, tl.wall_anchor_ns)  # type: ignore[arg-type]
    assert len(calls) == 3
    by_name = {s.name: s for s in tracer.finished}
    root = by_name["coldstart"]
    assert root.attributes["coldstart.bundle.size"] == sum(len("x = 1\n") * (n + 1) for n in range(3))
    assert by_name["import m2"].attributes["coldstart.module.size"] == 18
