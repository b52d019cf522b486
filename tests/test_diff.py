"""``otel-coldstart diff``: spans matched by what they are; slower/bigger/new/gone; the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.builder import T0, shop, to_jaeger_v3, write_lines
from test_validate_jaeger import FakeJaeger, _json

from otel_coldstart.cli import main
from otel_coldstart.validate import analysis, readers
from otel_coldstart.validate import compare as diff  # the comparison; diff_report renders it


def _summaries(path: Path) -> list[analysis.Summary]:
    return [analysis.summarize(t) for t in readers.read_file(str(path))[1]]


def test_matches_by_module_and_service_and_lists_changes(tmp_path: Path) -> None:
    base = write_lines(tmp_path / "base.jsonl", shop())
    candidate = write_lines(tmp_path / "cand.jsonl", shop(extra_import_ms=150))
    document = diff.compare(_summaries(base), _summaries(candidate))
    cold = next(m for m in document["metrics"] if m["name"] == "cold_start_ms")
    assert cold["delta"] == pytest.approx(150) and cold["delta_pct"] == pytest.approx(100 * 150 / 900)
    assert [r["name"] for r in document["new"]] == ["pandas"]
    assert (
        document["new"][0]["candidate_ms"] == pytest.approx(150)
        and document["new"][0]["where"] == "import app"
    )
    slower = {r["name"]: r for r in document["slower"]}
    assert slower["app"]["delta_ms"] == pytest.approx(150)
    assert "numpy" not in slower and "db" not in slower  # unchanged, though ids and start times moved
    assert document["gone"] == []
    assert document["regressions"] == [] and document["exit_code"] == 0


def test_gate_percent_of_base_and_absolute(tmp_path: Path) -> None:
    base = _summaries(write_lines(tmp_path / "base.jsonl", shop()))
    candidate = _summaries(write_lines(tmp_path / "cand.jsonl", shop(extra_import_ms=150)))
    # +150 ms on a 900 ms base is 16.7 %: the total, app, main and the new pandas import all exceed 10 %
    failed = diff.compare(base, candidate, threshold=diff.parse_threshold("10%"))
    assert failed["exit_code"] == 1
    assert {(r["kind"], r["name"]) for r in failed["regressions"]} >= {
        ("cold start", "cold start"),
        ("import", "pandas"),
    }
    assert diff.compare(base, candidate, threshold=diff.parse_threshold("20%"))["exit_code"] == 0
    assert diff.compare(base, candidate, threshold=diff.parse_threshold("100ms"))["exit_code"] == 1
    # Both given: a change must exceed both to fail.
    assert diff.compare(base, candidate, threshold=diff.parse_threshold("10%,200ms"))["exit_code"] == 0


def test_gone_and_bigger(tmp_path: Path) -> None:
    base = _summaries(write_lines(tmp_path / "base.jsonl", shop(extra_import_ms=50)))
    candidate = _summaries(write_lines(tmp_path / "cand.jsonl", shop(scale=1.2)))
    document = diff.compare(base, candidate)
    assert [r["name"] for r in document["gone"]] == ["pandas"]
    bigger = {r["name"] for r in document["bigger"]}
    assert "numpy" not in bigger  # same file size, same RSS delta


@pytest.mark.parametrize("text", ["", "10", "ten%", "10%%", "5 m"])
def test_bad_thresholds(text: str) -> None:
    with pytest.raises(diff.ThresholdError):
        diff.parse_threshold(text)


def test_statistic_over_many_traces(tmp_path: Path) -> None:
    base = _summaries(
        write_lines(
            tmp_path / "b.jsonl", *[shop(scale=s, t0=T0 + i * 10**10) for i, s in enumerate((1, 1, 3))]
        )
    )
    candidate = _summaries(write_lines(tmp_path / "c.jsonl", shop(scale=1.0)))
    median = diff.compare(base, candidate, "p50")
    assert next(m for m in median["metrics"] if m["name"] == "cold_start_ms")["delta"] == pytest.approx(0)
    worst = diff.compare(base, candidate, "max")
    assert next(m for m in worst["metrics"] if m["name"] == "cold_start_ms")["delta"] == pytest.approx(-1800)


def test_cli_diff_files_and_jaeger(tmp_path: Path, capsys) -> None:
    base = write_lines(tmp_path / "base.jsonl", shop())
    candidate_doc = shop(extra_import_ms=150)
    candidate = write_lines(tmp_path / "cand.jsonl", candidate_doc)
    assert main(["diff", str(base), str(candidate)]) == 0
    out = capsys.readouterr().out
    assert "New:" in out and "pandas" in out and "+150.0 ms" in out
    markdown = tmp_path / "diff.md"
    assert (
        main(["diff", str(base), str(candidate), "--max-regression", "10%", "--markdown", str(markdown)]) == 1
    )
    assert "REGRESSION" in capsys.readouterr().out and "**FAIL**" in markdown.read_text()
    assert main(["diff", str(base), str(tmp_path / "missing.jsonl")]) == 2
    assert main(["diff", str(base), str(candidate), "--max-regression", "lots"]) == 2

    fake = FakeJaeger()
    fake.thread.start()
    try:
        fake.routes["/api/v3/traces"] = lambda q: _json(to_jaeger_v3(candidate_doc))
        code = main(["diff", str(base), f"{fake.url}?service=shop&limit=5", "--format", "json"])
        document = json.loads(capsys.readouterr().out)
        assert code == 0 and document["schema"] == "otel-coldstart/diff"
        assert [r["name"] for r in document["new"]] == ["pandas"]
    finally:
        fake.server.shutdown()
        fake.server.server_close()


def _pool_run(tmp_path: Path, name: str, total: float, db: float, wait: float, x_ms: float, rss: int) -> Path:
    from fixtures.builder import Builder

    from otel_coldstart import conventions as cv

    b = Builder()
    root = b.root(total)
    main = b.phase("coldstart.main", root, 10, total, "main")
    b.import_("xlib", main, 11, 11 + x_ms, rss_delta=rss)
    tier = b.phase("coldstart.tier critical", main, 100, 100 + db + wait, "critical")
    b.service("db", tier, 100, 100 + db)
    b.span(
        "wait db",
        tier,
        100 + db,
        100 + db + wait,
        {cv.KIND: cv.KIND_WAIT, cv.SERVICE_NAME: "db"},
    )
    return write_lines(tmp_path / f"{name}.jsonl", b.otlp())


def test_gate_ignores_waits_and_lists_no_noise(tmp_path: Path) -> None:
    """A wait that grew while the cold start got 120 ms faster is no regression; a 0.3 ms change
    and an RSS delta that rounds to the same 1.7 MB are not listed."""
    from otel_coldstart.validate.outputs import diff_report

    base = _summaries(_pool_run(tmp_path, "base", 900, 300, 1, 50, 1_700_000))
    candidate = _summaries(_pool_run(tmp_path, "cand", 780, 140, 40, 50.3, 1_720_000))
    document = diff.compare(base, candidate, threshold=diff.parse_threshold("2%"))
    assert document["exit_code"] == 0, document["regressions"]
    slower = [r["name"] for r in document["slower"]]
    assert any("wait db" in name for name in slower)  # listed, but it does not gate
    assert "xlib" not in slower and "xlib" not in [r["name"] for r in document["faster"]]
    assert document["bigger"] == []
    text = diff_report.render(document)
    assert "1.7 -> 1.7 MB" not in text and "not listed" in text
    # A service that got slower past the gate does fail it.
    worse = _summaries(_pool_run(tmp_path, "worse", 1000, 400, 1, 50, 1_700_000))
    failed = diff.compare(base, worse, threshold=diff.parse_threshold("5%"))
    assert ("service", "db") in {(r["kind"], r["name"]) for r in failed["regressions"]}


def test_long_names_are_cut_between_segments() -> None:
    from otel_coldstart.validate.outputs.report import shorten

    path = "coldstart > coldstart.main > coldstart.tier critical > init database > wait config"
    short = shorten(path, 44)
    assert len(short) <= 44 and short.endswith("> wait config") and "…" in short
    assert all(part in path for part in short.replace("…", "").split(" > ") if part.strip())
    assert shorten("otel-coldstart (its own work before ready)", 30) == "otel-coldstart (its own work…"
    module = "pip._vendor.rich.segment_tools.something_long.deeper.module_name"
    assert shorten(module, 30).endswith(".module_name")
