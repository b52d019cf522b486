"""The trace file at exit without the SDK (``light_trace.py``) and the exit policy
``OTEL_PYTHON_COLDSTART_EXIT_EXPORT=defer``: real processes under ``otel-coldstart run``, a real
OTLP receiver for the deferred send."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from helpers import clean_env, write
from otlp_receiver import HttpReceiver

from otel_coldstart import conventions as cv
from otel_coldstart.deliver import otlp_json, sdk_setup, spool

BIN = Path(sys.executable).parent

# Prints, after our exit work (atexit handlers run before ours, but our exit work runs before
# atexit: threading._shutdown), whether any of OpenTelemetry was imported.
APP = """
import atexit, json, sqlite3, sys, threading
t = threading.Thread(target=lambda: None); t.start(); t.join()
try:
    import no_such_module_here
except ImportError:
    pass
VERSION_ONLY = ("opentelemetry.sdk", "opentelemetry.sdk.version")  # namespace package + one string
atexit.register(lambda: print("otel loaded:", sorted(
    m for m in sys.modules if m.startswith("opentelemetry.") and m not in VERSION_ONLY)))
print("app done")
"""


def run(tmp_path: Path, script: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = clean_env()
    full.update(
        OTEL_SERVICE_NAME="light-test",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_COLDSTART_SPOOL_DIR=str(tmp_path / "spool"),
    )
    full.update(env)
    command = [str(BIN / "otel-coldstart"), "run", sys.executable, str(script)]
    done = subprocess.run(command, env=full, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done


def documents(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def spans_by_id(docs: list[dict]) -> dict[str, dict]:
    return {
        span["spanId"]: span
        for doc in docs
        for rs in doc["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    }


def test_trace_file_only_imports_no_opentelemetry_and_leaves_no_spool(tmp_path: Path) -> None:
    script = write(tmp_path / "app.py", APP)
    trace_file = tmp_path / "trace.jsonl"
    done = run(
        tmp_path, script, OTEL_TRACES_EXPORTER="none", OTEL_PYTHON_COLDSTART_TRACE_FILE=str(trace_file)
    )
    assert done.stdout == "app done\notel loaded: []\n", done.stderr
    spans = spans_by_id(documents(trace_file))
    names = Counter(span["name"] for span in spans.values())
    assert names[cv.ROOT_SPAN] == 1 and names[cv.IMPORT_SPAN_PREFIX + "sqlite3"] == 1
    failed = next(
        span for span in spans.values() if span["name"] == cv.IMPORT_SPAN_PREFIX + "no_such_module_here"
    )
    assert failed["status"]["code"] == 2 and failed["events"][0]["name"] == cv.EXCEPTION_EVENT
    root = next(span for span in spans.values() if span["name"] == cv.ROOT_SPAN)
    assert any(event["name"] == cv.MEMORY_SNAPSHOT_EVENT for event in root["events"])
    resource = {kv["key"] for kv in documents(trace_file)[0]["resourceSpans"][0]["resource"]["attributes"]}
    assert {"service.name", "telemetry.sdk.version", "process.pid"} <= resource
    assert spool.list_entries(str(tmp_path / "spool")) == []  # the file was the only sink: done


def test_deferred_export_writes_the_file_then_flush_sends_the_same_trace_once(tmp_path: Path) -> None:
    script = write(tmp_path / "app.py", APP)
    trace_file = tmp_path / "trace.jsonl"
    spool_dir = tmp_path / "spool"
    with HttpReceiver("up") as receiver:
        done = run(
            tmp_path,
            script,
            OTEL_PYTHON_COLDSTART_TRACE_FILE=str(trace_file),
            OTEL_PYTHON_COLDSTART_EXIT_EXPORT="defer",
            **receiver.env(),
        )
        assert "otel loaded: []" in done.stdout, done.stderr
        assert receiver.spans() == []  # deferred: nothing sent at exit
        file_docs = documents(trace_file)
        (entry,) = spool.list_entries(str(spool_dir))
        raw = spool.read_raw(entry.path)
        assert raw["trace_file"] is None  # written already: never twice

        # The SDK builds the same raw copy into the very trace the file holds: same ids, same data.
        built = sdk_setup.build_from_raw(raw)
        sdk_docs = [otlp_json.encode(built)]
        assert spans_by_id(sdk_docs) == spans_by_id(file_docs)
        assert sdk_docs[0]["resourceSpans"][0]["resource"] == file_docs[0]["resourceSpans"][0]["resource"]

        env = {**os.environ, **receiver.env(), "OTEL_EXPORTER_OTLP_TIMEOUT": "5"}
        command = [sys.executable, "-m", "otel_coldstart.cli", "flush", "--spool-dir", str(spool_dir)]
        flushed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert flushed.returncode == 0, flushed.stdout + flushed.stderr
        received = receiver.wait_for_spans(len(spans_by_id(file_docs)))
        assert Counter(s.span_id for s in received) == Counter(list(spans_by_id(file_docs)))
    assert documents(trace_file) == file_docs  # flush did not write the file again
    assert spool.list_entries(str(spool_dir)) == []


def test_auto_still_sends_at_exit(tmp_path: Path) -> None:
    script = write(tmp_path / "app.py", "import json\n")
    trace_file = tmp_path / "trace.jsonl"
    with HttpReceiver("up") as receiver:
        # A budget the busiest machine meets: on a starved one ``auto`` spools rather than send.
        run(
            tmp_path,
            script,
            OTEL_PYTHON_COLDSTART_TRACE_FILE=str(trace_file),
            OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT="20",
            **receiver.env(),
        )
        file_ids = set(spans_by_id(documents(trace_file)))
        received = receiver.wait_for_spans(len(file_ids))
        assert {s.span_id for s in received} == file_ids
