"""The validator judges the service's own processes, shows helpers apart, and says how each cold
start ended (exit, timeout, signal) in every output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from fixtures.builder import T0, shop, write_lines

from otel_coldstart import conventions as cv


def cold_start(role: str, trigger: str = "gunicorn", scale: float = 1.0, index: int = 0) -> dict[str, Any]:
    document = shop(scale=scale, t0=T0 + index * 10**10)
    for resource_spans in document["resourceSpans"]:
        for scope in resource_spans["scopeSpans"]:
            for span in scope["spans"]:
                if span["name"] == cv.ROOT_SPAN:
                    span["attributes"] = [a for a in span["attributes"] if a["key"] != cv.READY_TRIGGER] + [
                        {"key": cv.PROCESS_ROLE, "value": {"stringValue": role}},
                        {"key": cv.READY_TRIGGER, "value": {"stringValue": trigger}},
                    ]
    return document


def validate(path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "otel_coldstart.cli", "validate", str(path), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_helpers_are_shown_apart_and_never_judged(tmp_path: Path):
    path = write_lines(
        tmp_path / "fleet.jsonl",
        cold_start(cv.ROLE_WORKER, scale=1.0, index=0),
        cold_start(cv.ROLE_WORKER, scale=1.1, index=1),
        # Slow helpers: judged with the workers they would make the p50 fail the 2 s target.
        cold_start(cv.ROLE_SUPERVISOR, scale=5.0, index=2),
        cold_start(cv.ROLE_RESOURCE_TRACKER, trigger=cv.TRIGGER_EXIT, scale=6.0, index=3),
    )
    document = json.loads(validate(path, "--format", "json").stdout)
    (cold_start_target,) = [t for t in document["targets"] if t["key"] == "max_cold_start_ms"]
    assert cold_start_target["status"] == "pass"
    assert len(cold_start_target["values"]) == 2  # the workers' only
    assert [t["process_role"] for t in document["traces"]] == ["worker", "worker"]
    assert sorted(h["process_role"] for h in document["helpers"]) == ["resource_tracker", "supervisor"]
    assert document["representative"]["process_role"] == "worker"
    (note,) = document["notes"]
    assert "Judged 2 workers" in note and "1 supervisor" in note and "1 resource_tracker" in note
    text = validate(path)
    assert "helper processes shown apart, not judged" in text.stdout


def test_only_helpers_is_one_clear_line_and_bad_input(tmp_path: Path):
    path = write_lines(tmp_path / "helpers.jsonl", cold_start(cv.ROLE_SUPERVISOR))
    run = validate(path)
    assert run.returncode == 2
    assert run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1
    assert "only helper processes' cold starts (supervisor)" in run.stderr


def test_how_a_cold_start_ended_is_said_in_every_output(tmp_path: Path):
    documents = [
        cold_start(cv.ROLE_SERVICE, trigger=cv.TRIGGER_EXIT, index=0),
        cold_start(cv.ROLE_SERVICE, trigger=cv.TRIGGER_SIGNAL, index=1),
        cold_start(cv.ROLE_SERVICE, trigger=cv.TRIGGER_TIMEOUT, index=2),
        cold_start(cv.ROLE_SERVICE, trigger="uvicorn", index=3),
    ]
    path = write_lines(tmp_path / "mixed.jsonl", *documents)
    outputs = {name: tmp_path / f"out.{name}" for name in ("md", "xml", "html")}
    text = validate(
        path, "--markdown", str(outputs["md"]), "--junit", str(outputs["xml"]), "--html", str(outputs["html"])
    )
    document = json.loads(validate(path, "--format", "json").stdout)
    assert [t["ready_trigger"] for t in document["traces"]] == ["exit", "signal", "timeout", "uvicorn"]
    notes = document["notes"]
    assert len(notes) == 3
    for trigger, words in (
        ("exit", "process's exit"),
        ("signal", "stopped by a signal"),
        ("timeout", "TIMEOUT"),
    ):
        (note,) = [n for n in notes if f"'{trigger}'" in n]
        assert note.startswith("1 of 4 cold starts") and words in note
        assert words in text.stdout
        for output in outputs.values():
            assert words in output.read_text().replace("&#x27;", "'").replace("&apos;", "'")


def test_a_single_ready_cold_start_has_no_notes(tmp_path: Path):
    path = write_lines(tmp_path / "one.jsonl", cold_start(cv.ROLE_SERVICE, trigger="uvicorn"))
    document = json.loads(validate(path, "--format", "json").stdout)
    assert document["notes"] == []
    assert document["helpers"] == []
