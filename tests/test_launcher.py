"""Real processes launched through ``opentelemetry-instrument``: entry points, trace file, edge cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from helpers import flush_into_trace_file, parse_importtime, run_instrumented, write

from otel_coldstart.validate.analysis import is_import

#: The app's own package (``own_package``): tests never assume which standard-library modules the
#: interpreter or the launcher imported before the app (3.13's importlib.metadata imports json).
APP = """
import app_pkg, decimal, email.mime.text
try:
    import not_installed_anywhere
except ImportError:
    pass
print("app done")
"""


def own_package(tmp_path: Path) -> None:
    """``app_pkg`` (with a submodule) beside the script: a module nothing imports before the app."""
    write(tmp_path / "app_pkg" / "__init__.py", "from app_pkg import inner\n")
    write(tmp_path / "app_pkg" / "inner.py", "VALUE = 1\n")


def import_spans(trace):
    return [s for s in trace.spans if is_import(s)]


def test_launcher_loads_distro_and_writes_the_cold_start_trace(tmp_path: Path):
    own_package(tmp_path)
    script = write(tmp_path / "app.py", APP)
    run = run_instrumented(script, tmp_path / "trace.jsonl")
    assert run.completed.returncode == 0, run.completed.stderr
    assert "app done" in run.completed.stdout
    trace = run.trace()
    root = trace.root
    assert root.name == "coldstart"
    assert root.attributes["coldstart.origin"] == "launcher"
    assert root.attributes["coldstart.ready.trigger"] == "exit"
    assert root.resource["service.name"] == "coldstart-test"
    assert root.resource["telemetry.distro.name"] == "otel-coldstart"
    assert root.resource["process.pid"] > 0
    assert root.resource["process.runtime.name"] == "cpython"
    assert root.resource["process.executable.path"]
    # process.creation.time is the root's start, to the millisecond.
    created = datetime.fromisoformat(root.resource["process.creation.time"].replace("Z", "+00:00"))
    assert abs(created.timestamp() * 1e9 - root.start_ns) < 2e6
    phases = {c.name for c in root.children}
    assert {"coldstart.boot", "coldstart.launcher", "coldstart.main"} <= phases
    boot = next(c for c in root.children if c.name == "coldstart.boot")
    assert boot.start_ns == root.start_ns and boot.duration_ns > 0
    main = next(c for c in root.children if c.name == "coldstart.main")
    top = {s.attributes["coldstart.module.name"]: s for s in main.children if is_import(s)}
    assert {"app_pkg", "decimal", "email.mime.text", "not_installed_anywhere"} <= set(top)
    assert top["not_installed_anywhere"].status_code == 2
    assert top["app_pkg"].attributes["code.file.path"].endswith("app_pkg/__init__.py")
    # Nothing of ours is recorded as the application's: the SDK is set up after ready.
    assert not any(
        s.attributes.get("coldstart.module.name", "").startswith("opentelemetry.sdk") for s in main.walk()
    )


def test_import_tree_equals_python_x_importtime(tmp_path: Path):
    """Same modules, same parents as `-X importtime` for real third-party packages."""
    script = write(
        tmp_path / "app.py",
        "import sys\n"
        "import psutil\n"
        "import google.protobuf.json_format\n"
        "import opentelemetry.sdk.trace\n"
        "import email.mime.text, decimal\n"
        "sys.stderr.write('--- app done ---\\n'); sys.stderr.flush()\n",
    )
    run = run_instrumented(script, tmp_path / "trace.jsonl", python_args=("-X", "importtime"))
    assert run.completed.returncode == 0, run.completed.stderr[-2000:]
    stderr = run.completed.stderr
    # The program's imports: after `site` (which holds sitecustomize, i.e. the launcher) finished,
    # before the marker (what follows is our own work at exit).
    program = stderr.split("| site\n", 1)[1].split("--- app done ---", 1)[0]
    expected = sorted((m, p) for m, p in parse_importtime(program))
    assert len(expected) > 50

    trace = run.trace()
    main = next(c for c in trace.root.children if c.name == "coldstart.main")

    def module(span):
        return span.attributes["coldstart.module.name"]

    def seen_by_importtime(span):
        # importtime times only the C import path; importlib.import_module goes straight to
        # _find_and_load from Python (protobuf probes its C extension that way). We record those too
        # (coldstart.import.api = import_module); importtime folds their children into the caller.
        return is_import(span) and span.attributes.get("coldstart.import.api") != "import_module"

    got = []
    for span in main.walk():
        if not seen_by_importtime(span) or module(span) == "usercustomize":  # site imports it first
            continue
        parent = span.parent
        while parent is not None and is_import(parent) and not seen_by_importtime(parent):
            parent = parent.parent
        got.append((module(span), module(parent) if is_import(parent) else None))
    assert any(s.attributes.get("coldstart.import.api") == "import_module" for s in main.walk())
    extra, missing = sorted(set(got) - set(expected)), sorted(set(expected) - set(got))
    assert sorted(got) == expected, f"extra {extra}\nmissing {missing}"


def test_ready_marked_by_the_app_and_late_imports(tmp_path: Path):
    own_package(tmp_path)
    script = write(
        tmp_path / "app.py",
        "import app_pkg\nimport otel_coldstart\nassert otel_coldstart.mark_ready()\n"
        "assert not otel_coldstart.mark_ready()\nimport time\ntime.sleep(0.3)\nimport decimal\n",
    )
    run = run_instrumented(script, tmp_path / "trace.jsonl")
    assert run.completed.returncode == 0, run.completed.stderr
    trace = run.trace()
    assert trace.root.attributes["coldstart.ready.trigger"] == "explicit"
    modules = {s.attributes.get("coldstart.module.name") for s in trace.spans}
    assert "app_pkg" in modules and "decimal" not in modules  # decimal came after ready


def test_disabled_instrumentation_keeps_the_trace_without_import_spans(tmp_path: Path):
    script = write(tmp_path / "app.py", "import json, decimal\n")
    run = run_instrumented(
        script, tmp_path / "trace.jsonl", env={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "coldstart_imports"}
    )
    assert run.completed.returncode == 0, run.completed.stderr
    trace = run.trace()
    assert trace.root is not None
    assert import_spans(trace) == []


def test_our_distro_picks_our_configurator_beside_the_stock_distro(tmp_path: Path):
    pytest.importorskip("opentelemetry.distro")
    own_package(tmp_path)
    script = write(tmp_path / "app.py", "import app_pkg\n")
    # Only OTEL_PYTHON_DISTRO is set: our distro must make its own configurator win.
    run = run_instrumented(script, tmp_path / "trace.jsonl", env={"OTEL_PYTHON_CONFIGURATOR": None})
    assert run.completed.returncode == 0, run.completed.stderr
    trace = run.trace()
    assert "app_pkg" in {s.attributes.get("coldstart.module.name") for s in trace.spans}
    # The stock configurator would have imported the SDK during the launcher phase; ours defers it.
    assert not any(
        str(s.attributes.get("coldstart.module.name", "")).startswith("opentelemetry.sdk")
        for s in trace.spans
    )


def test_stock_distro_chosen_still_yields_a_cold_start_trace(tmp_path: Path):
    pytest.importorskip("opentelemetry.distro")
    # colorsys: nothing in the stock SDK set-up imports it before the app does.
    script = write(tmp_path / "app.py", "import colorsys\n")
    env = {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator"}
    run = run_instrumented(script, tmp_path / "trace.jsonl", env=env)
    assert run.completed.returncode == 0, run.completed.stderr
    # Our instrumentor entry point installs the recorder even when the stock distro configures.
    assert "colorsys" in {s.attributes.get("coldstart.module.name") for s in run.trace().spans}


def test_os_exit_still_writes_the_trace(tmp_path: Path):
    own_package(tmp_path)
    script = write(tmp_path / "app.py", "import os, app_pkg\nos._exit(3)\n")
    run = run_instrumented(script, tmp_path / "trace.jsonl")
    assert run.completed.returncode == 3
    assert "app_pkg" in {s.attributes.get("coldstart.module.name") for s in run.trace().spans}


def test_thousands_of_imports_arrive_whole(tmp_path: Path):
    """Past the batch processor's 2,048-span queue: every import must be in the file."""
    pkg = tmp_path / "many"
    write(pkg / "__init__.py", "".join(f"from many import m{i}\n" for i in range(3000)))
    for i in range(3000):
        write(pkg / f"m{i}.py", "")
    script = write(tmp_path / "app.py", "import many\n")
    # A budget that fits building 3,000 spans at exit, so that the file is there when the process
    # ends (with the default 0.5 s the raw copy would wait in the spool for `otel-coldstart flush`).
    env = {"OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT": "60"}
    run = run_instrumented(script, tmp_path / "trace.jsonl", cwd=tmp_path, env=env)
    assert run.completed.returncode == 0, run.completed.stderr
    modules = {s.attributes.get("coldstart.module.name") for s in run.trace().spans}
    assert {f"many.m{i}" for i in range(3000)} <= modules


def test_minimum_duration_filter_from_the_environment(tmp_path: Path):
    script = write(tmp_path / "app.py", "import json, decimal, email.mime.text\n")
    run = run_instrumented(
        script, tmp_path / "trace.jsonl", env={"OTEL_PYTHON_COLDSTART_MIN_IMPORT_DURATION_MS": "1000"}
    )
    assert run.completed.returncode == 0, run.completed.stderr
    trace = run.trace()
    assert import_spans(trace) == []
    assert trace.root.attributes["coldstart.imports.count"] > 3


def test_bad_setting_warns_and_the_app_still_runs(tmp_path: Path):
    script = write(tmp_path / "app.py", "print('still here')\n")
    run = run_instrumented(script, tmp_path / "trace.jsonl", env={"OTEL_PYTHON_COLDSTART_READY": "sometimes"})
    assert run.completed.returncode == 0
    assert "still here" in run.completed.stdout
    assert "OTEL_PYTHON_COLDSTART_READY" in run.completed.stderr
    assert run.trace().root is not None


def test_programmatic_start_without_the_launcher(tmp_path: Path):
    trace_file = tmp_path / "trace.jsonl"
    own_package(tmp_path)
    script = write(
        tmp_path / "app.py",
        "import otel_coldstart\notel_coldstart.start()\n"
        "import app_pkg, decimal\notel_coldstart.mark_ready()\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_COLDSTART_TRACE_FILE=str(trace_file),
        OTEL_PYTHON_COLDSTART_SPOOL_DIR=str(tmp_path / "spool"),
    )

    completed = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    document = json.loads(trace_file.read_text().splitlines()[0])
    names = {s["name"] for rs in document["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]}
    assert {"coldstart", "coldstart.boot", "coldstart.main", "import app_pkg", "import decimal"} <= names
    assert "coldstart.launcher" not in names


def test_no_exporter_means_nothing_to_deliver_and_nothing_spooled(tmp_path: Path):
    """OTEL_TRACES_EXPORTER=none with the trace file as the sink: no spool file, no warning."""
    script = write(tmp_path / "app.py", "import json\n")
    run = run_instrumented(script, tmp_path / "trace.jsonl")
    assert run.completed.returncode == 0, run.completed.stderr
    assert run.trace().root is not None
    assert "spool" not in run.completed.stderr
    spool_dir = tmp_path / "spool"
    assert not spool_dir.exists() or not any(spool_dir.iterdir())


def test_exit_right_after_ready_keeps_a_large_trace_and_flush_builds_it(tmp_path: Path):
    """mark_ready() then exit at once with a tiny budget: the worker is still building thousands of
    spans. The exit does not wait for it; the raw copy waits in the spool, and `flush` builds it
    into the trace file (the only sink here), whole."""
    pkg = tmp_path / "many"
    write(pkg / "__init__.py", "".join(f"from many import m{i}\n" for i in range(3000)))
    for i in range(3000):
        write(pkg / f"m{i}.py", "")
    script = write(tmp_path / "app.py", "import many, otel_coldstart\notel_coldstart.mark_ready()\n")
    trace_file = tmp_path / "trace.jsonl"
    run = run_instrumented(
        script, trace_file, cwd=tmp_path, env={"OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT": "0.01"}
    )
    assert run.completed.returncode == 0, run.completed.stderr
    if not trace_file.exists():  # the usual case: the exit cut the worker off
        flush_into_trace_file(tmp_path / "spool")
    assert os.listdir(tmp_path / "spool") == []
    trace = run.trace()
    assert trace.root.attributes["coldstart.ready.trigger"] == "explicit"
    modules = {s.attributes.get("coldstart.module.name") for s in trace.spans}
    assert {f"many.m{i}" for i in range(3000)} <= modules
