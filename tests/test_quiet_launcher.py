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


LAZY_LOG = """
import sys
from otel_coldstart.deliver import lazy_log
lazy_log.logger.info("dropped %s", 1)
lazy_log.logger.debug("dropped")
print("logging imported after info:", "logging" in sys.modules)
lazy_log.logger.warning("otel-coldstart: shown")
print("logging imported after warning:", "logging" in sys.modules)
"""


def test_info_lines_do_not_import_logging_but_warnings_are_shown() -> None:
    # Nobody has imported logging: nobody configured it, and info would be dropped anyway.
    done = subprocess.run([sys.executable, "-c", LAZY_LOG], capture_output=True, text=True, timeout=60)
    assert done.stdout == "logging imported after info: False\nlogging imported after warning: True\n"
    assert done.stderr == "otel-coldstart: shown\n"
    # Configured by the app: info goes where the app sends it.
    setup = "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout)\n"
    configured = setup + LAZY_LOG
    done = subprocess.run([sys.executable, "-c", configured], capture_output=True, text=True, timeout=60)
    assert "INFO:otel_coldstart:dropped 1" in done.stdout
