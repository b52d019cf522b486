"""The raw copy's format: records as marshalled columns (version 2), rows as JSON (version 1, still
read, and written when a value cannot be marshalled), the same timeline back either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otel_coldstart.deliver import raw_copy
from otel_coldstart.record import timeline
from otel_coldstart.record.timeline import ImportRecord, Record, Timeline

ROOT = Path(__file__).resolve().parents[1]

#: Imports of every kind a module can be, recorded for real by the import hook in a fresh
#: interpreter, then snapshotted both ways: what each record says must come back the same.
RECORDED = r"""
import json, sys
sys.path.insert(0, {tree!r})
from otel_coldstart.deliver import raw_copy
from otel_coldstart.record import imports, timeline

imports.install("start")
import email.message, sqlite3, decimal, zipimport  # source, package, extension, frozen or builtin
import nsonly.inner                                 # a namespace package
import replaced                                     # puts a non-module in sys.modules
import ownspec                                      # a module with its own __spec__ object
import importlib; importlib.import_module("colorsys")
try:
    import broken
except ZeroDivisionError:
    pass
opened = timeline.open_record("service", "db", {{"coldstart.service.name": "db", "n": 1}})
import wave
timeline.close_record(opened)
frozen = timeline.freeze("explicit")
imports.uninstall()

def records(tl):
    out = []
    everything = tl.imports + tl.records
    where = {{id(r): i for i, r in enumerate(everything)}}
    for r in everything:
        spec = getattr(r, "spec", None)
        out.append([r.name, r.start, r.end, r.thread, where.get(id(r.parent), -1),
                    list(r.error) if r.error else None, getattr(r, "via_import_module", None),
                    getattr(r, "rss_delta", None), getattr(r, "attrs", None), r.kind,
                    [spec.kind, spec.path] if spec is not None else None])
    return out

base = dict(process_start_ns=0, resource={{}}, trace_file=None)
columns = raw_copy.snapshot(frozen, **base)
rows = dict(columns, records=raw_copy._rows(frozen), others=None, version=raw_copy.ROWS_VERSION)
from_columns = raw_copy.to_timeline(raw_copy.decode(raw_copy.encode(columns)))
from_rows = raw_copy.to_timeline(raw_copy.decode(raw_copy.encode(rows)))
found = {{"columns": records(from_columns), "rows": records(from_rows)}}
print(json.dumps(dict(found, version=columns["version"])))
"""


def _tree(root: Path) -> Path:
    (root / "nsonly" / "inner").mkdir(parents=True)
    (root / "nsonly" / "inner" / "__init__.py").write_text("")
    (root / "replaced.py").write_text("import sys\nsys.modules[__name__] = 42\n")
    (root / "ownspec.py").write_text(
        "class Spec:\n    origin = '/somewhere/ownspec.py'\n    loader = None\n"
        "    has_location = True\n    submodule_search_locations = None\n__spec__ = Spec()\n"
    )
    (root / "broken.py").write_text("1 / 0\n")
    return root


def test_columns_give_back_what_rows_give_back_for_every_kind_of_module(tmp_path: Path) -> None:
    script = RECORDED.format(tree=str(_tree(tmp_path)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["version"] == raw_copy.VERSION
    assert found["columns"] == found["rows"]
    by_name = {record[0]: record for record in found["columns"]}
    kinds = {name: by_name[name][10][0] for name in ("email.message", "email", "sqlite3", "nsonly")}
    assert kinds == {
        "email.message": "source",
        "email": "package",
        "sqlite3": "package",
        "nsonly": "namespace",
    }
    assert by_name["_sqlite3"][10][0] in ("extension", "builtin")
    assert by_name["ownspec"][10] == ["source", "/somewhere/ownspec.py"]
    assert by_name["replaced"][10] is None  # nothing readable: no facts
    assert by_name["broken"][5][0] == "ZeroDivisionError"
    assert by_name["colorsys"][6] is True
    db = by_name["db"]
    assert db[9] == "service" and db[8] == {"coldstart.service.name": "db", "n": 1}
    assert by_name["wave"][4] == found["columns"].index(db)


def _small() -> Timeline:
    tl = Timeline("start")
    base = tl.mono_anchor_ns
    first = ImportRecord("json", base + 10, None, 1, False)
    first.end = base + 500
    service = Record("service", "db", base + 600, None, 1, {"coldstart.service.name": "db"})
    service.end = base + 900
    inside = ImportRecord("wave", base + 650, service, 1, True)
    inside.end = base + 700
    tl.imports.extend([first, inside])
    tl.records.append(service)
    tl.ready_ns, tl.ready_trigger = base + 1000, "explicit"
    return tl


def _payload(tl: Timeline) -> bytes:
    return raw_copy.encode(raw_copy.snapshot(tl, process_start_ns=0, resource={}, trace_file=None))


def test_a_value_marshal_cannot_store_writes_rows_instead() -> None:
    tl = _small()
    tl.records[0].name = "db\0shard"  # the columns join names with NUL
    raw = raw_copy.snapshot(tl, process_start_ns=0, resource={}, trace_file=None)
    assert raw["version"] == raw_copy.ROWS_VERSION
    back = raw_copy.to_timeline(raw_copy.decode(raw_copy.encode(raw)))
    assert [r.name for r in back.imports + back.records] == ["json", "wave", "db\0shard"]
    assert back.imports[1].parent is back.records[0]


def test_a_copy_rewritten_after_reading_is_the_same_copy() -> None:
    raw = raw_copy.decode(_payload(_small()))
    again = raw_copy.decode(raw_copy.encode(raw))
    assert again == raw


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p[:-7],  # cut short
        lambda p: p.split(b"\n", 1)[0] + b"\n",  # no records at all
        lambda p: p.replace(b'"version":2', b'"version":9'),
        lambda p: p.replace(b'"imports":2', b'"imports":5'),
        lambda p: p.split(b"\n", 1)[0] + b"\n" + __import__("marshal").dumps({"name": [1, 2], "start": [1]}),
        lambda p: b"\x00\x01garbage",
        lambda p: _recolumned(p, name="json"),  # fewer names than records
        lambda p: _recolumned(p, origin_none=[7]),  # a position past the imports
    ],
)
def test_a_damaged_copy_is_refused_not_half_read(damage: Any) -> None:
    with pytest.raises(ValueError):
        raw_copy.decode(damage(_payload(_small())))


def _recolumned(payload: bytes, **changes: Any) -> bytes:
    import marshal

    head, _, blob = payload.partition(b"\n")
    return head + b"\n" + marshal.dumps({**marshal.loads(blob), **changes}, 2)


def test_a_version_1_copy_left_in_the_spool_is_still_read() -> None:
    tl = _small()
    raw = raw_copy.snapshot(tl, process_start_ns=0, resource={}, trace_file=None)
    old = dict(raw, records=raw_copy._rows(tl), version=1)
    del old["others"]  # version 1 had no such key
    back = raw_copy.to_timeline(raw_copy.decode(raw_copy.encode(old)))
    assert [(r.name, r.start, r.end) for r in back.imports] == [(r.name, r.start, r.end) for r in tl.imports]
    assert back.imports[1].parent is back.records[0] and back.records[0].attrs == tl.records[0].attrs


def _other_pythons() -> list[str]:
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = []
    for version in ("3.10.13", "3.12.1", "3.13.0", "3.11.7"):
        python = os.path.join(root, "versions", version, "bin", "python")
        if os.access(python, os.X_OK) and os.path.realpath(python) != os.path.realpath(sys.executable):
            found.append(python)
    return found


@pytest.mark.skipif(not _other_pythons(), reason="no other CPython installed")
def test_a_copy_written_by_one_python_is_read_by_another(tmp_path: Path) -> None:
    """``flush`` may run under another Python than the app's (marshal's format 2 is shared)."""
    writer = "\n".join(
        [
            "import sys",
            "from otel_coldstart.deliver import raw_copy",
            "from otel_coldstart.record import imports, timeline",
            "imports.install('start')",
            "import json, email.message",
            "frozen = timeline.freeze('explicit')",
            "imports.uninstall()",
            "raw = raw_copy.snapshot(frozen, process_start_ns=0, resource={}, trace_file=None)",
            "sys.stdout.buffer.write(raw_copy.encode(raw))",
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    read = 0
    for python in _other_pythons():
        done = subprocess.run([python, "-c", writer], capture_output=True, env=env, timeout=60)
        if done.returncode != 0 and b"ModuleNotFoundError" in done.stderr:
            continue  # that Python lacks a dependency of ours: nothing to learn from it
        assert done.returncode == 0, done.stderr.decode()
        raw = raw_copy.decode(done.stdout)
        assert raw["version"] == raw_copy.VERSION
        back = raw_copy.to_timeline(raw)
        names = [r.name for r in back.imports]
        assert "email.message" in names
        message = back.imports[names.index("email.message")]
        assert message.spec.kind == "source" and message.spec.path.endswith("email/message.py")
        assert message.parent is None or message.parent.name.startswith("email")
        read += 1
    assert read, "no other Python could write a copy: nothing was compared"


def test_releasing_the_timeline_after_the_snapshot_leaves_the_copy_whole() -> None:
    tl = _small()
    raw = raw_copy.snapshot(tl, process_start_ns=0, resource={}, trace_file=None)
    timeline.release(tl)
    back = raw_copy.to_timeline(raw_copy.decode(raw_copy.encode(raw)))
    assert [r.name for r in back.imports] == ["json", "wave"]


def test_flush_builds_both_formats_and_older_versions_cannot_see_the_new_one(tmp_path: Path) -> None:
    """A spool shared with an older otel-coldstart: its ``.raw`` (format 1) is built by ``flush``
    like our ``.raw2``, and our copies carry a name the older version's patterns do not list (it
    would set a format it cannot read aside as unreadable)."""
    import re

    from helpers import flush_into_trace_file

    from otel_coldstart.deliver import spool

    spool_dir = tmp_path / "spool"
    for version, name in ((raw_copy.ROWS_VERSION, "old"), (raw_copy.VERSION, "new")):
        tl = _small()
        trace_file = str(tmp_path / f"{name}.jsonl")
        raw = raw_copy.snapshot(
            tl, process_start_ns=0, resource={"service.name": name}, trace_file=trace_file
        )
        if version == raw_copy.ROWS_VERSION:
            raw = dict(raw, records=raw_copy._rows(tl), version=1)
            del raw["others"]
            spool.write_file(str(spool_dir), f"{spool.new_stem()}.raw", raw_copy.encode(raw))
        else:
            spool.write_file(
                str(spool_dir), spool.free_name(spool.new_stem(), spool.RAW), raw_copy.encode(raw)
            )
    names = sorted(os.listdir(spool_dir))
    older_free = re.compile(r"^\d+-\d+-[0-9a-f]+\.(jsonl|raw)$")  # what 0.x before format 2 lists
    assert [bool(older_free.match(n)) for n in names] == [True, False], names
    flush_into_trace_file(spool_dir)
    assert os.listdir(spool_dir) == []
    for name in ("old", "new"):
        text = (tmp_path / f"{name}.jsonl").read_text()
        assert '"import wave"' in text and '"db"' in text, name
