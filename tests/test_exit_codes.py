"""One exit-code table: the README and every command's --help show it, and the commands return it."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_coldstart import exit_codes
from otel_coldstart.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_shows_the_table_verbatim() -> None:
    assert exit_codes.markdown_table() in README.read_text(encoding="utf-8")


@pytest.mark.parametrize("command", ["validate", "diff", "flush", "demo"])
def test_each_command_help_lists_its_own_codes(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert exit_codes.epilog(command) in shown
    listed = {int(line.split()[0]) for line in exit_codes.epilog(command).splitlines()[1:]}
    expected = {code for code, _, meanings in exit_codes.TABLE for who in meanings if command in who}
    assert listed == expected and exit_codes.OK in listed


def test_bad_configuration_and_bad_input_are_told_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The disagreement the table ended: a bad targets file is 3, a bad trace is 2, one line each.
    import json

    from fixtures.builder import shop

    trace = tmp_path / "t.json"
    trace.write_text(json.dumps(shop()), encoding="utf-8")
    targets = tmp_path / "targets.toml"
    targets.write_text("[tool.otel-coldstart]\nmax_cold_start_msx = 1\n", encoding="utf-8")
    assert main(["validate", str(trace), "--targets", str(targets)]) == exit_codes.BAD_CONFIG
    # An unknown --statistic is bad usage in both commands; in the targets file it is configuration.
    assert main(["validate", str(trace), "--statistic", "fastest"]) == exit_codes.BAD_INPUT
    (tmp_path / "stat.toml").write_text('[tool.otel-coldstart]\nstatistic = "p42"\n', encoding="utf-8")
    assert main(["validate", str(trace), "--targets", str(tmp_path / "stat.toml")]) == exit_codes.BAD_CONFIG
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["validate", str(bad)]) == exit_codes.BAD_INPUT
    assert main(["diff", str(trace), str(trace), "--statistic", "fastest"]) == exit_codes.BAD_INPUT
    errors = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(errors) == 5 and all(line.startswith("otel-coldstart: error: ") for line in errors)
