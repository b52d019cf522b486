"""Who is whose parent, at the edges of recording: a fork inside an import, a record opened inside
the very first import, the imports read while still recording, many threads importing at once.
Each one through a real recording in a fresh interpreter and the raw copy read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(tmp_path)])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


PARENTS = """
import json as _json
from otel_coldstart.deliver import raw_copy
def parents(tl):
    raw = raw_copy.snapshot(tl, process_start_ns=0, resource={}, trace_file=None)
    back = raw_copy.to_timeline(raw_copy.decode(raw_copy.encode(raw)))
    every = back.imports + back.records
    return {r.name: (r.parent.name if r.parent is not None else None) for r in every}
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_inside_an_import_never_takes_the_parents_import_for_its_own(tmp_path: Path) -> None:
    # The child's ContextVar still names the import the fork happened in: a record of the parent's
    # timeline, which must be no parent in the child's own.
    write(tmp_path / "forker.py", "import os\nPID = os.fork()\nif PID == 0:\n    import kid_a\n")
    write(tmp_path / "kid_a.py", "import kid_b\n")
    write(tmp_path / "kid_b.py", "X = 1\n")
    write(tmp_path / "before1.py", "X = 1\n")
    write(tmp_path / "before2.py", "X = 1\n")
    script = PARENTS + (
        "import os, sys\n"
        "from otel_coldstart.record import imports, timeline\n"
        "os.register_at_fork(after_in_child=timeline.reset_after_fork)\n"
        "imports.install('start')\n"
        "import before1, before2\n"
        "import forker\n"
        "tl = timeline.freeze('explicit')\n"
        "if forker.PID == 0:\n"
        "    print(_json.dumps(parents(tl)))\n"
        "    sys.stdout.flush(); os._exit(0)\n"
        "os.waitpid(forker.PID, 0)\n"
    )
    found = _run(script, tmp_path)
    assert found == {"kid_a": None, "kid_b": "kid_a"}


def test_a_record_opened_inside_the_first_import_has_it_as_parent(tmp_path: Path) -> None:
    # The first record of all: it must be a parent like any other.
    write(
        tmp_path / "first_mod.py",
        "from otel_coldstart.record import timeline\n"
        "opened = timeline.open_record('service', 'db', {})\n"
        "import second_mod\n"
        "timeline.close_record(opened)\n",
    )
    write(tmp_path / "second_mod.py", "X = 1\n")
    script = PARENTS + (
        "from otel_coldstart.record import imports, timeline\n"
        "timeline.begin('start')\n"
        "import otel_coldstart.record.timeline\n"
        "imports.install('start')\n"
        "import first_mod\n"
        "tl = timeline.freeze('explicit')\n"
        "print(_json.dumps(parents(tl)))\n"
    )
    found = _run(script, tmp_path)
    assert found["db"] == "first_mod" and found["second_mod"] == "db" and found["first_mod"] is None


def test_reading_the_imports_while_recording_loses_nothing_and_keeps_every_parent(tmp_path: Path) -> None:
    write(tmp_path / "outer_mod.py", "import peek\nimport inner_mod\n")
    # Reads the timeline's imports from inside an import.
    write(
        tmp_path / "peek.py",
        "from otel_coldstart.record import timeline\nSEEN = len(timeline.current().imports)\n",
    )
    write(tmp_path / "inner_mod.py", "import leaf_mod\n")
    write(tmp_path / "leaf_mod.py", "X = 1\n")
    script = PARENTS + (
        "from otel_coldstart.record import imports, timeline\n"
        "imports.install('start')\n"
        "import outer_mod\n"
        "tl = timeline.freeze('explicit')\n"
        "found = parents(tl)\n"
        "found['peek saw'] = __import__('peek').SEEN\n"
        "print(_json.dumps(found))\n"
    )
    found = _run(script, tmp_path)
    assert found["peek saw"] >= 2  # outer_mod and peek itself, as objects
    assert found["outer_mod"] is None and found["peek"] == "outer_mod"
    assert found["inner_mod"] == "outer_mod" and found["leaf_mod"] == "inner_mod"


MODULES = 150


def test_imports_on_many_threads_at_once_keep_their_own_fields(tmp_path: Path) -> None:
    # Each import its own record: threads switching as often as the interpreter can (3.12+ may
    # switch between two C calls) never write into each other's.
    for t in range(8):
        for m in range(MODULES):
            write(
                tmp_path / f"th{t}_m{m}.py",
                f"import time\nX = {m}\n" + ("time.sleep(0.0005)\n" if m % 3 else ""),
            )
        write(tmp_path / f"th{t}.py", "".join(f"import th{t}_m{m}\n" for m in range(MODULES)))
    script = PARENTS + (
        "import threading, sys\n"
        "sys.setswitchinterval(1e-6)  # hand the GIL over as often as the interpreter can\n"
        "from otel_coldstart.record import imports, timeline\n"
        "imports.install('start')\n"
        "threads = [threading.Thread(target=__import__, args=(f'th{t}',)) for t in range(8)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "tl = timeline.freeze('explicit')\n"
        "ok = all(r.start <= r.end for r in tl.imports)\n"
        "print(_json.dumps(dict(parents(tl), ok=ok)))\n"
    )
    found = _run(script, tmp_path)
    assert found.pop("ok") is True
    for t in range(8):
        assert found[f"th{t}"] is None
        assert all(found[f"th{t}_m{m}"] == f"th{t}" for m in range(MODULES)), found
