"""``OTEL_PYTHON_COLDSTART_*`` settings: every bad value is one warning and that setting's default."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_instrumented, write

from otel_coldstart import config

HOSTILE = ["inf", "-inf", "nan", "NaN", "1e300", "-1", "-0.5", "garbage", "0x10", "1_0_", "\u0661e999"]
NUMERIC = [s for s in config.Settings.SETTINGS if s.read in (config._float, config._int)]


@pytest.mark.parametrize("setting", NUMERIC, ids=lambda s: s.env)
@pytest.mark.parametrize("raw", HOSTILE)
def test_a_hostile_number_is_one_problem_and_the_default(
    monkeypatch: pytest.MonkeyPatch, setting: config.Setting, raw: str
) -> None:
    monkeypatch.setenv(config.PREFIX + setting.env, raw)
    settings, problems = config.load()
    assert getattr(settings, setting.name) == setting.default
    (problem,) = problems
    assert problem.startswith(config.PREFIX + setting.env + "=")


def test_good_values_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_COLDSTART_READY_TIMEOUT", " 2.5 ")
    monkeypatch.setenv("OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT", str(config.DAY_S))
    monkeypatch.setenv("OTEL_PYTHON_COLDSTART_READY", "Explicit")
    monkeypatch.setenv("OTEL_PYTHON_COLDSTART_SPOOL_MAX_BYTES", "1024")
    monkeypatch.setenv("OTEL_PYTHON_COLDSTART_LIVE_IMPORTS", "off")
    monkeypatch.setenv("OTEL_PYTHON_COLDSTART_MIN_IMPORT_DURATION_MS", "")  # blank: the default
    settings, problems = config.load()
    assert problems == []
    assert settings.ready_timeout_s == 2.5
    assert settings.exit_timeout_s == config.DAY_S
    assert settings.ready == "explicit"
    assert settings.spool_max_bytes == 1024
    assert settings.live_imports is False
    assert settings.min_import_duration_ms == 0.0


def test_defaults_live_in_settings_only() -> None:
    from otel_coldstart.deliver import spool

    assert config.load() == (config.Settings(), [])
    assert config.Settings().spool_max_bytes == spool.DEFAULT_MAX_BYTES


def test_every_setting_hostile_at_once_under_the_launcher(tmp_path: Path) -> None:
    """The app runs as without us, one warning per bad setting, and the cold start is written."""
    env = {config.PREFIX + f.env: HOSTILE[i % len(HOSTILE)] for i, f in enumerate(NUMERIC)}
    env[config.PREFIX + "READY"] = "whenever"
    env[config.PREFIX + "SPOOL_DRAIN"] = "perhaps"
    script = write(tmp_path / "app.py", "import json\nprint('still here')\n")
    run = run_instrumented(script, tmp_path / "trace.jsonl", env=env)
    assert run.completed.returncode == 0, run.completed.stderr
    assert run.completed.stdout == "still here\n"
    warnings = [line for line in run.completed.stderr.splitlines() if line.startswith("otel-coldstart:")]
    assert len(warnings) == len(env), run.completed.stderr
    assert all(line.endswith("; using the default") for line in warnings)
    assert "Traceback" not in run.completed.stderr
    assert run.trace().root.attributes["coldstart.ready.trigger"] == "exit"
