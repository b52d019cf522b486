"""The command line: exit codes, formats, outputs (JSON schema, JUnit, Markdown, HTML), colour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fixtures.builder import T0, shop, to_jaeger_classic, write_lines

from otel_coldstart.cli import main

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "shop.jsonl", shop())


@pytest.fixture
def passing(tmp_path: Path) -> Path:
    toml = tmp_path / "ok.toml"
    toml.write_text("max_bundle_mb = 10\n")
    return toml


def test_exit_codes(tmp_path: Path, trace_file: Path, passing: Path, capsys) -> None:
    assert main(["validate", str(trace_file), "--targets", str(passing)]) == 0
    assert main(["validate", str(trace_file)]) == 1  # bundle 6 MB > 5 MB
    assert "Result: FAIL (bundle size)" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{")
    assert main(["validate", str(tmp_path / "bad.json")]) == 2
    assert main(["validate", str(tmp_path / "missing.jsonl")]) == 2
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("max_cold_starts_ms = 5\n")
    assert main(["validate", str(trace_file), "--targets", str(unknown)]) == 3
    assert main(["validate", str(trace_file), "--statistic", "p999"]) == 2
    assert main(["validate", str(trace_file), "--statistic", "p42"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 5 and all(line.startswith("otel-coldstart: error: ") for line in errors)


def test_help_documents_the_exit_codes() -> None:
    for command in (["validate", "--help"], ["diff", "--help"], ["--help"]):
        completed = subprocess.run(
            [sys.executable, "-m", "otel_coldstart.cli", *command],
            capture_output=True,
            text=True,
            check=False,
        )
        assert completed.returncode == 0
        assert "exit codes:" in completed.stdout and "1  a" in completed.stdout


def test_no_traceback_on_bad_input_in_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": 5}]}]}]}\n')
    completed = subprocess.run(
        [sys.executable, "-m", "otel_coldstart.cli", "validate", str(tmp_path / "t.jsonl")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr and completed.stderr.count("\n") == 1


def test_format_is_detected_and_said(tmp_path: Path, capsys) -> None:
    path = tmp_path / "classic.json"
    path.write_text(json.dumps(to_jaeger_classic(shop())))
    main(["validate", str(path)])
    assert "(Jaeger classic JSON)" in capsys.readouterr().out


def test_json_schema(trace_file: Path, capsys) -> None:
    code = main(["validate", str(trace_file), "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 1 and document["exit_code"] == 1 and document["result"] == "fail"
    assert document["schema"] == "otel-coldstart/validate" and document["schema_version"] == 1
    assert {t["key"] for t in document["targets"]} >= {
        "max_cold_start_ms",
        "max_peak_memory_mb",
        "max_mean_service_init_ms",
        "max_bundle_mb",
    }
    shown = document["representative"]
    assert shown["memory"]["top_consumers"][0] == {
        "kind": "import",
        "name": "numpy",
        "rss_delta_bytes": 18_000_000,
    }
    assert shown["phases"]["boot"] == 250.0 and shown["critical_ready_ms"] == 760.0
    assert {r["kind"] for r in document["recommendations"]} >= {"boot", "lazy-import", "parallelise", "defer"}
    json.dumps(document, allow_nan=False)  # strict JSON: no NaN/Infinity


def test_many_traces_show_the_distribution(tmp_path: Path, capsys) -> None:
    runs = [shop(scale=1 + i * 0.1, t0=T0 + i * 10**10) for i in range(5)]
    path = write_lines(tmp_path / "runs.jsonl", *runs)
    main(["validate", str(path), "--statistic", "p95", "--color", "never"])
    out = capsys.readouterr().out
    assert "5 cold starts of shop, judged on p95" in out
    assert "Distribution over 5 cold starts" in out and "cold_start_ms" in out
    assert "cold start [p95]" in out


def test_junit_markdown_html(tmp_path: Path, trace_file: Path) -> None:
    junit, markdown, page = tmp_path / "r.xml", tmp_path / "r.md", tmp_path / "r.html"
    main(
        ["validate", str(trace_file), "--junit", str(junit), "--markdown", str(markdown), "--html", str(page)]
    )
    suites = ET.parse(junit).getroot()
    cases = suites.findall("./testsuite/testcase")
    assert len(cases) == 4 and suites.get("failures") == "1"
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["max_bundle_mb"]
    text = markdown.read_text()
    assert text.startswith("## ❌ Cold start of `shop`: FAIL") and "| ❌ | bundle size |" in text

    html = page.read_text()
    parser = _Structure()
    parser.feed(html)
    assert parser.external == [], "the page must not load anything from the network"
    assert {"icicle", "legend", "tip", "coldstart-data"} <= parser.ids
    assert parser.scripts == 2 and parser.styles == 1
    data = json.loads(parser.data)
    names = {span[3] for span in data["spans"]}
    assert {"coldstart", "import numpy", "init db", "coldstart.tier critical"} <= names
    kinds = {span[4] for span in data["spans"]}
    assert {"import", "import-failed", "service-critical", "service-optional", "phase", "wait"} <= kinds


def test_html_escapes_names_from_the_trace(tmp_path: Path) -> None:
    document = shop(service="</script><script>alert(1)</script>")
    path = write_lines(tmp_path / "evil.jsonl", document)
    page = tmp_path / "evil.html"
    main(["validate", str(path), "--html", str(page)])
    html = page.read_text()
    assert "<script>alert(1)" not in html
    parser = _Structure()
    parser.feed(html)
    assert parser.scripts == 2


class _Structure(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.external: list[str] = []
        self.scripts = self.styles = 0
        self.data = ""
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        for key in ("src", "href"):
            if values.get(key):
                self.external.append(values[key])
        if tag == "script":
            self.scripts += 1
            self._in_data = values.get("id") == "coldstart-data"
        if tag == "style":
            self.styles += 1

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_data = False


def test_colour_only_on_a_tty_and_never_with_no_color(trace_file: Path) -> None:
    command = [sys.executable, "-m", "otel_coldstart.cli", "validate", str(trace_file)]
    piped = subprocess.run(command, capture_output=True, text=True, check=False)
    assert "\x1b[" not in piped.stdout
    forced = subprocess.run([*command, "--color", "always"], capture_output=True, text=True, check=False)
    assert "\x1b[31;1mFAIL" in forced.stdout
    pty = pytest.importorskip("pty")
    for env, coloured in (({}, True), ({"NO_COLOR": "1"}, False)):
        output = _run_in_pty(pty, command, {**os.environ, "TERM": "xterm", **env})
        assert ("\x1b[" in output) is coloured, env


def _run_in_pty(pty, command: list[str], env: dict[str, str]) -> str:
    import select

    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdout=follower, stderr=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=30)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_html_screenshot_in_headless_chromium(tmp_path: Path, trace_file: Path) -> None:
    sys.path.insert(0, str(SCRIPTS))
    try:
        import screenshot_html
    finally:
        sys.path.remove(str(SCRIPTS))
    if screenshot_html.find_chromium() is None:
        pytest.skip("no chromium installed (apt-get install -y chromium)")
    page = tmp_path / "r.html"
    main(["validate", str(trace_file), "--html", str(page)])
    out = screenshot_html.screenshot(page, tmp_path / "r.png", 1200, 900)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a blank page compresses to ~5 kB
