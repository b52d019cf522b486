"""The launcher with the stock distro installed beside ours (the dev extra installs it): choosing
our configurator must not print a warning on every run, and the demo says nothing untrue."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_instrumented


def test_choosing_our_configurator_prints_no_warning(tmp_path: Path) -> None:
    names = {ep.name for ep in importlib.metadata.entry_points(group="opentelemetry_configurator")}
    if "configurator" not in names:
        pytest.skip("the stock opentelemetry-distro is not installed")
    script = tmp_path / "app.py"
    script.write_text("import json\nprint('hello')\n")
    run = run_instrumented(script, tmp_path / "trace.jsonl")
    assert run.completed.returncode == 0
    assert run.completed.stdout == "hello\n"
    assert "not loaded because" not in run.completed.stderr
    assert len(run.trace().spans) > 3  # and it did record


def test_other_launcher_warnings_still_pass() -> None:
    import logging

    # Not through distro: importing it arms the recorder in this test process.
    from otel_coldstart.launch.launcher_warnings import OurConfiguratorChosen

    keep = OurConfiguratorChosen()
    ours = logging.LogRecord(
        "x",
        logging.WARNING,
        "",
        0,
        "Configuration of %s not loaded because %s is set by %s",
        ("configurator", "otel_coldstart", "OTEL_PYTHON_CONFIGURATOR"),
        None,
    )
    other = logging.LogRecord(
        "x",
        logging.WARNING,
        "",
        0,
        "Configuration of %s not loaded because %s is set by %s",
        ("otel_coldstart", "configurator", "OTEL_PYTHON_CONFIGURATOR"),
        None,
    )
    assert not keep.filter(ours) and keep.filter(other)


def test_demo_claims_no_port(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "otel_coldstart.cli", "demo", "--trace-file", str(tmp_path / "d.jsonl")]
    env = {"OTEL_PYTHON_COLDSTART_SPOOL_DIR": str(tmp_path / "spool"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert "ready on port" not in done.stderr + done.stdout
    assert "not bound" in done.stderr
    assert "not loaded because" not in done.stderr
