"""Per-module p50/p95 across all the cold starts, in the JSON, text and HTML outputs."""

from __future__ import annotations

import json
from pathlib import Path

from fixtures.builder import shop, write_lines

from otel_coldstart.cli import main
from otel_coldstart.validate import analysis, readers, stats


def test_per_module_percentiles_across_cold_starts(tmp_path: Path, capsys) -> None:
    # pandas only in the runs with extra import time: 5 of 6 cold starts.
    runs = [shop(scale=1 + i / 10, extra_import_ms=i * 3) for i in range(6)]
    path = write_lines(tmp_path / "fleet.jsonl", *runs)
    html = tmp_path / "page.html"
    main(["validate", str(path), "--format", "json", "--html", str(html)])
    fleet = json.loads(capsys.readouterr().out)["fleet"]
    assert fleet["cold_starts"] == 6
    rows = {row["module"]: row for row in fleet["modules"]}
    assert rows["pandas"]["cold_starts"] == 5 and rows["numpy.core"]["cold_starts"] == 6

    # The same figures computed independently, trace by trace.
    _, traces = readers.read_file(str(path))
    own = [
        next(f.self_ns for f in analysis.summarize(t).imports if f.module == "numpy.core") / 1e6
        for t in traces
    ]
    assert rows["numpy.core"]["self_ms"]["p50"] == round(stats.percentile(own, 50), 3)
    assert rows["numpy.core"]["self_ms"]["p95"] == round(stats.percentile(own, 95), 3)
    assert rows["app"]["cumulative_ms"]["p95"] > rows["app"]["self_ms"]["p95"]
    p95s = [row["self_ms"]["p95"] for row in fleet["modules"]]
    assert p95s == sorted(p95s, reverse=True)  # the slowest first

    main(["validate", str(path), "--color", "never"])
    text = capsys.readouterr().out
    assert "Imports across 6 cold starts" in text and "numpy.core" in text.split("Imports across")[1]
    assert "Imports across 6 cold starts" in html.read_text()


def test_one_cold_start_has_no_fleet_section(tmp_path: Path, capsys) -> None:
    path = write_lines(tmp_path / "one.jsonl", shop())
    main(["validate", str(path), "--color", "never"])
    assert "Imports across" not in capsys.readouterr().out
