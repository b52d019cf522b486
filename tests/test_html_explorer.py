"""The HTML explorer: recommendations first and readable, search, a self-time table, small
imports grouped rather than dropped, targets on the time axis, the boot slab labelled."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fixtures.builder import Builder, shop, write_lines

from otel_coldstart.cli import main


def _page(tmp_path: Path, document: dict) -> str:
    trace = write_lines(tmp_path / "t.jsonl", document)
    main(["validate", str(trace), "--html", str(tmp_path / "p.html")])
    return (tmp_path / "p.html").read_text(encoding="utf-8")


def _data(page: str) -> dict:
    raw = re.search(r"<script type='application/json' id=coldstart-data>(.*?)</script>", page, re.S)
    assert raw is not None
    return json.loads(raw.group(1))


def test_recommendations_come_first_without_literal_backticks(tmp_path: Path) -> None:
    page = _page(tmp_path, shop())
    assert page.index("<h2>Recommendations</h2>") < page.index("<h2>Targets</h2>") < page.index("id=icicle")
    advice = page[page.index("<h2>Recommendations</h2>") : page.index("<h2>Targets</h2>")]
    assert "`" not in advice and "<code>python -X frozen_modules=on</code>" in advice
    assert "id=search" in page and "Where the time is spent" in page


def test_small_imports_are_grouped_and_targets_marked(tmp_path: Path) -> None:
    b = Builder()
    root = b.root(1000)
    b.phase("coldstart.boot", root, 0, 300, "boot")
    main_phase = b.phase("coldstart.main", root, 300, 1000, "main")
    app = b.import_("app", main_phase, 301, 900)
    for i in range(5000):  # more imports than the page draws one by one (4000), each under a pixel
        b.import_(f"tiny{i}", app, 302 + i * 0.11, 302 + i * 0.11 + 0.05)
    data = _data(_page(tmp_path, b.otlp()))
    groups = [s for s in data["spans"] if s[4] == "aggregate"]
    assert groups and all(re.fullmatch(r"\d+ small imports", s[3]) for s in groups)
    assert (
        sum(int(s[3].split()[0]) for s in groups)
        + sum(1 for s in data["spans"] if s[3].startswith("import tiny"))
        == 5000
    )
    assert {m["label"] for m in data["markers"]} == {"cold start target 2000 ms"}
    boot = next(s for s in data["spans"] if s[3].startswith("boot:"))
    assert "launcher wrapper" in boot[3]
