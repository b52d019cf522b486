"""Attribution: one recommendation per chain of imports, savings that add up, nothing the program
needs before ready deferred, and the main phase explained (a real program under the launcher)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from otel_coldstart import conventions as cv
from otel_coldstart.validate import analysis, readers, recommend
from otel_coldstart.validate.model import union_ns
from tests.fixtures.builder import Builder, write_lines
from tests.helpers import flush_into_trace_file, run_instrumented


def _summary(tmp_path: Path, document: dict) -> analysis.Summary:
    path = write_lines(tmp_path / "trace.jsonl", document)
    (trace,) = readers.read_file(str(path))[1]
    return analysis.summarize(trace)


def _pip_like(used: list[str] | None) -> dict:
    """pip's shape: main -> cli.main -> autocompletion -> main_parser (each 0.2 ms of self time),
    and the real cost below: build_env 160 ms, utils.logging 110 ms (which imports rich 80 ms)."""
    extra = {}
    if used is not None:
        extra = {
            cv.ENTRY_MODULE: "tool.__main__",
            cv.USED_MODULES: used,
            cv.USED_SOURCE: cv.USED_SOURCE_MONITORING,
        }
    b = Builder()
    root = b.root(700, **extra)
    b.phase("coldstart.boot", root, 0, 200, "boot")
    main = b.phase("coldstart.main", root, 200, 700, "main")
    cli = b.import_("tool.cli.main", main, 210, 520)
    auto = b.import_("tool.cli.autocompletion", cli, 210.2, 519.8)
    parser = b.import_("tool.cli.main_parser", auto, 210.4, 519.6)
    b.import_("tool.build_env", parser, 211, 371)
    logging = b.import_("tool.utils.logging", parser, 372, 482)
    b.import_("rich", logging, 380, 460)
    b.import_("tool.cli.parser", parser, 483, 519)
    return b.otlp()


def test_without_evidence_one_advice_per_chain(tmp_path: Path) -> None:
    summary = _summary(tmp_path, _pip_like(None))
    lazy = [a for a in recommend.recommend(summary) if a.kind == "lazy-import"]
    # Nothing is known to be needed: the outermost import is the one line to change, once.
    assert [a.subject for a in lazy] == ["tool.cli.main"]
    assert "alone takes" not in " ".join(a.message for a in recommend.recommend(summary))


def test_with_evidence_advice_goes_where_the_time_is(tmp_path: Path) -> None:
    used = ["tool.cli.main", "tool.cli.autocompletion", "tool.cli.main_parser", "tool.cli.parser"]
    used += ["tool.utils.logging", "rich"]
    summary = _summary(tmp_path, _pip_like(used))
    advice = recommend.recommend(summary)
    lazy = {a.subject: a for a in advice if a.kind == "lazy-import"}
    # The chain's modules ran (the program itself); build_env did not: it is the one to defer.
    # utils.logging ran, and so did rich: neither is advised.
    assert list(lazy) == ["tool.build_env"]
    assert lazy["tool.build_env"].saving_ns == 160_000_000
    assert 'lazy_module("tool.build_env")' in lazy["tool.build_env"].message
    assert "lazy import tool.build_env" in lazy["tool.build_env"].message
    reasons = {item.figure.module: item.reason for item in recommend.left_out(summary)}
    assert "tool.cli.main" in reasons and "ran its code" in reasons["tool.cli.main"]
    total, covered, _ = recommend.claimed(advice)
    assert covered <= summary.cold_start_ns and total <= summary.cold_start_ns


def test_shared_subtree_is_not_counted_as_saved(tmp_path: Path) -> None:
    b = Builder()
    root = b.root(600, **{cv.USED_MODULES: ["numpy"], cv.USED_SOURCE: cv.USED_SOURCE_MONITORING})
    main = b.phase("coldstart.main", root, 100, 600, "main")
    app = b.import_("app", main, 101, 400)
    plots = b.import_("plotlib", app, 102, 350)
    b.import_("numpy", plots, 110, 300)  # needed anyway: the app calls numpy before ready
    summary = _summary(tmp_path, b.otlp())
    (lazy,) = [a for a in recommend.recommend(summary) if a.kind == "lazy-import"]
    assert lazy.subject == "plotlib" and lazy.saving_ns == 58_000_000
    assert "numpy, needed anyway" in lazy.message


LIB_NEEDED = """
import time
time.sleep(0.25)
class Engine:
    def __init__(self):
        self.ready = True
"""
LIB_UNUSED = """
import time
time.sleep(0.25)
def render():
    return 1
"""
APP = """
import time
import enginelib
import plotlib

engine = enginelib.Engine()


def warm_caches():
    deadline = time.perf_counter() + 0.15
    while time.perf_counter() < deadline:
        sum(range(1000))


warm_caches()
"""


def test_real_program_needs_are_kept_and_main_phase_explained(tmp_path: Path) -> None:
    site = tmp_path / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "enginelib.py").write_text(textwrap.dedent(LIB_NEEDED))
    (site / "plotlib.py").write_text(textwrap.dedent(LIB_UNUSED))
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(APP))
    run = run_instrumented(script, tmp_path / "trace.jsonl", env={"PYTHONPATH": str(site)})
    assert run.completed.returncode == 0, run.completed.stderr
    summary = analysis.summarize(run.trace())
    root = summary.trace.root
    assert root is not None and "enginelib" in root.attributes[cv.USED_MODULES]
    assert "plotlib" not in root.attributes[cv.USED_MODULES]
    advice = recommend.recommend(summary)
    lazy = [a.subject for a in advice if a.kind == "lazy-import"]
    assert lazy == ["plotlib"], [a.message for a in advice]
    reasons = {item.figure.module: item.reason for item in recommend.left_out(summary)}
    assert "needed before ready" in reasons["enginelib"]
    # The 150 ms busy loop at module level is a span of its own, and the main phase is explained.
    main = next(s for s in root.children if s.name == "coldstart.main")
    calls = [s for s in main.children if s.attributes.get(cv.KIND) == cv.KIND_CODE]
    busy = [s for s in calls if s.name == "call warm_caches"]
    assert busy and sum(s.duration_ns for s in busy) >= 100_000_000
    explained = union_ns(
        [(max(s.start_ns, main.start_ns), min(s.end_ns, main.end_ns)) for s in main.children]
    )
    assert explained >= 0.9 * main.duration_ns


def test_a_read_out_that_does_not_fit_the_exit_budget_is_skipped_and_said(tmp_path: Path) -> None:
    # A large app ending at exit with a tight budget: the samples stay unread (the raw copy goes
    # first), the trace says why, and the report says it instead of showing no code at all.
    from helpers import import_tree

    # 13,000 modules: the read-out's estimate (2 us per module and per sampled frame) is then above
    # the 25 ms always read whatever the samples. With 6,000, a quiet machine took few enough
    # samples to stay below it, and the read-out was done (3.10 and 3.13 in one CI run).
    import_tree(tmp_path, 13000, 100)
    script = tmp_path / "app.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport bigtree\n")
    # Samples every 2 ms: a read-out too large for that budget (at the default 10 ms, the samples
    # of a 6,000-module start-up are few enough to be read in any exit).
    env = {"OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT": "0.05", "OTEL_PYTHON_COLDSTART_PROFILE_INTERVAL_MS": "2"}
    run = run_instrumented(script, tmp_path / "trace.jsonl", env=env, timeout=120)
    assert run.completed.returncode == 0, run.completed.stderr
    if not (tmp_path / "trace.jsonl").exists():  # a budget this tight may leave even the file to flush
        flush_into_trace_file(tmp_path / "spool")
    summary = analysis.summarize(run.trace())
    root = summary.trace.root
    assert root is not None and root.attributes[cv.PROFILE_SKIPPED] == cv.PROFILE_SKIPPED_EXIT_BUDGET
    assert cv.USED_MODULES not in root.attributes
    main = next(s for s in root.children if s.name == "coldstart.main")
    assert not [s for s in main.children if s.attributes.get(cv.KIND) == cv.KIND_CODE]
    command = [sys.executable, "-m", "otel_coldstart.cli", "validate", str(tmp_path / "trace.jsonl")]
    text = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert "not read: the cold start ended at exit" in text.stdout, text.stdout + text.stderr
    as_json = subprocess.run([*command, "--format", "json"], capture_output=True, text=True, timeout=120)
    assert '"profile_skipped": "exit_budget"' in as_json.stdout
