"""A fleet in bounded memory (gather.py): each cold start summarised as its trace completes and
kept without its spans gives the same result as holding every trace whole, and the peak memory of
a run does not grow with the number of cold starts."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures.builder import T0, shop, trace_id, write_lines

from otel_coldstart import conventions as cv
from otel_coldstart.cli import main
from otel_coldstart.validate import analysis, gather, readers, recommend, result, roles, sources, targets
from otel_coldstart.validate.outputs import report


def _whole_document(paths: list[str], chosen: targets.Targets, origin: str = "defaults") -> dict[str, Any]:
    """The validate document the way it was built before gather.py: every trace held whole."""
    loaded = sources.load_many(list(paths))
    summaries, helpers = roles.split([analysis.summarize(t) for t in loaded.traces])
    verdicts = targets.judge(summaries, chosen, chosen.statistic)
    shown = result.representative(summaries, chosen.statistic)
    document = result.build(
        summaries,
        verdicts,
        recommend.recommend(shown),
        chosen,
        origin,
        chosen.statistic,
        loaded.description,
        loaded.fmt,
        helpers,
        recommend.left_out(shown),
    )
    return json.loads(json.dumps(document))


def _validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["validate", *args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def _fleet(count: int) -> list[dict[str, Any]]:
    """Cold starts that differ in length and in imports, started a second apart."""
    return [
        shop(scale=1 + (i * 7 % count) / 10, extra_import_ms=(i * 5 % 4) * 3, t0=T0 + i * 1_000_000_000)
        for i in range(count)
    ]


def _split(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One trace as two documents: its first half of spans without the root, then the rest."""
    first, second = copy.deepcopy(document), copy.deepcopy(document)
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    children = [s for s in spans if s.get("parentSpanId")]
    half = {s["spanId"] for s in children[: len(children) // 2]}
    first["resourceSpans"][0]["scopeSpans"][0]["spans"] = [s for s in spans if s["spanId"] in half]
    second["resourceSpans"][0]["scopeSpans"][0]["spans"] = [s for s in spans if s["spanId"] not in half]
    return first, second


@pytest.fixture
def tight(monkeypatch: pytest.MonkeyPatch) -> None:
    """No budget: every trace is complete after its document, every summary is compacted (but
    the one nearest the running statistic)."""
    monkeypatch.setattr(gather, "KEEP_SPANS", 0)
    monkeypatch.setattr(readers, "HOLD_SPANS", 0)


def test_same_document_as_whole_traces(tmp_path: Path, capsys, tight) -> None:
    runs = _fleet(9)
    path = write_lines(tmp_path / "fleet.jsonl", *runs)
    code, document = _validate(capsys, str(path))
    whole = _whole_document([str(path)], targets.Targets())
    assert document == whole
    assert code == whole["exit_code"]
    assert document["fleet"]["cold_starts"] == 9 and document["fleet"]["modules"]
    assert document["representative"]["trace_id"] in {trace_id(r) for r in runs}
    # The text report is rendered from that document: the same too.
    main(["validate", str(path), "--color", "never"])
    assert report.render(whole, report.Style(False)) in capsys.readouterr().out


def test_same_verdicts_on_module_and_service_targets_and_p95(tmp_path: Path, capsys, tight) -> None:
    path = write_lines(tmp_path / "fleet.jsonl.gz", *_fleet(8), gz=True)
    toml = tmp_path / "targets.toml"
    toml.write_text(
        'statistic = "p95"\nmax_cold_start_ms = 1200\n'
        '[services]\n"d*" = 100\n[modules]\n"numpy*" = 120\n"pandas" = 5\n'
    )
    chosen, origin = targets.load(str(toml))
    code, document = _validate(capsys, str(path), "--targets", str(toml))
    assert document == _whole_document([str(path)], chosen, origin)
    measured = {t["key"]: t for t in document["targets"]}
    assert measured["modules.numpy*"]["status"] != "not measured"
    assert len(measured["modules.pandas"]["values"]) == 6  # pandas in 6 of the 8 cold starts
    assert code == 1


def test_the_representative_read_again_equals_the_one_held_whole(tmp_path: Path) -> None:
    path = str(write_lines(tmp_path / "fleet.jsonl", *_fleet(6)))
    gathered = gather.gather([path], "p50", targets.Targets(), keep_spans=0, hold_spans=0)
    whole = {t.trace_id: analysis.summarize(t) for t in readers.read_file(path)[1]}
    compacted = [s for s in gathered.judged if s.compact]
    assert len(compacted) == 5  # all but one
    for summary in compacted:
        again = gathered.full(summary)
        assert not again.compact and again.span_count == summary.span_count
        expected = whole[summary.trace.trace_id]
        assert result._summary_document(again) == result._summary_document(expected)
        assert recommend.recommend(again) == recommend.recommend(expected)


def test_a_trace_scattered_across_the_file_is_read_again_whole(tmp_path: Path, capsys, tight) -> None:
    runs = _fleet(5)
    head, tail = _split(runs[2])
    lines = [head, runs[0], runs[1], runs[3], tail, runs[4]]
    path = write_lines(tmp_path / "scattered.jsonl", *lines)
    _, document = _validate(capsys, str(path))
    assert document == _whole_document([str(path)], targets.Targets())
    assert document["source"]["trace_count"] == 5
    feed = readers.TraceFeed([path.read_bytes()], str(path), hold_spans=0)
    assert len(list(feed)) == 4 and feed.late == {trace_id(runs[2])}


def test_truncated_last_line_and_files_given_twice(tmp_path: Path, capsys, tight) -> None:
    runs = _fleet(4)
    path = write_lines(tmp_path / "cut.jsonl", *runs)
    with open(path, "a") as handle:
        handle.write(json.dumps(shop(t0=T0 + 99 * 1_000_000_000))[:5000])
    other = write_lines(tmp_path / "again.jsonl", runs[1], shop(scale=2.0, t0=T0 + 50 * 1_000_000_000))
    _, document = _validate(capsys, str(path), str(other))
    assert document == _whole_document([str(path), str(other)], targets.Targets())
    assert document["source"]["trace_count"] == 5
    assert any("truncated" in w for w in document["representative"]["warnings"])


def test_malformed_input_after_many_cold_starts_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", *_fleet(6))
    with open(path, "a") as handle:
        handle.write('{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": }]}]}]}\n')
        handle.write(json.dumps(shop()) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "otel_coldstart.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert "bad.jsonl: line 7: malformed JSON" in done.stderr


# --- memory --------------------------------------------------------------------------------------


def _wide_trace(number: int, imports: int) -> str:
    """One cold start of ``imports`` import spans, as one OTLP JSON line (written as text: the
    builder's SDK path is too slow for a few hundred thousand spans)."""
    tid = f"{number:032x}"
    end = T0 + (400 + number % 97) * 1_000_000

    def span(sid: int, parent: int | None, name: str, start: int, stop: int, attrs: list) -> str:
        parent_text = f'"parentSpanId":"{parent:016x}",' if parent else ""
        return (
            f'{{"traceId":"{tid}","spanId":"{sid:016x}",{parent_text}"name":"{name}",'
            f'"startTimeUnixNano":"{start}","endTimeUnixNano":"{stop}","attributes":[{",".join(attrs)}]}}'
        )

    def attr(key: str, value: str) -> str:
        return f'{{"key":"{key}","value":{{"stringValue":"{value}"}}}}'

    spans = [
        span(1, None, cv.ROOT_SPAN, T0, end, [attr(cv.KIND, cv.KIND_ROOT)]),
        span(
            2, 1, cv.MAIN_SPAN, T0 + 1000, end, [attr(cv.KIND, cv.KIND_PHASE), attr(cv.PHASE, cv.PHASE_MAIN)]
        ),
    ]
    for index in range(imports):
        module = f"pkg{index % 50}.mod{index}"
        start = T0 + 2000 + index * 100_000
        parent = 2 if index % 10 == 0 else 3 + index - index % 10
        spans.append(
            span(
                3 + index,
                parent,
                f"{cv.IMPORT_SPAN_PREFIX}{module}",
                start,
                start + 50_000 + number,
                [attr(cv.KIND, cv.KIND_IMPORT), attr(cv.MODULE_NAME, module)],
            )
        )
    return (
        '{"resourceSpans":[{"resource":{"attributes":['
        + attr("service.name", "wide")
        + "]},"
        + ('"scopeSpans":[{"scope":{"name":"otel_coldstart"},"spans":[' + ",".join(spans) + "]}]}]}\n")
    )


_MEASURE = """
import io, json, sys, contextlib
from otel_coldstart.cli import main
from otel_coldstart.validate import gather, readers
# Budgets below the smaller fleet's size, so that both runs are past the point where they fill.
gather.KEEP_SPANS, readers.HOLD_SPANS = 5000, 3000
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(["validate", sys.argv[1], "--format", "json"])
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
document = json.loads(out.getvalue())
print(json.dumps({"peak": peak, "code": code, "traces": document["source"]["trace_count"],
                  "modules": len(document["fleet"]["modules"])}))
"""


def _peak(path: Path) -> dict[str, Any]:
    """The whole validate command in a fresh process: its own peak RSS (VmHWM)."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_the_number_of_cold_starts(tmp_path: Path) -> None:
    imports = 800
    figures = {}
    for count in (30, 120):
        path = tmp_path / f"fleet{count}.jsonl"
        with open(path, "w") as handle:
            for number in range(1, count + 1):
                handle.write(_wide_trace(number, imports))
        figures[count] = _peak(path)
        assert figures[count]["traces"] == count and figures[count]["modules"] == 20
        path.unlink()
    grown = figures[120]["peak"] - figures[30]["peak"]
    spans = 90 * (imports + 2)
    # Held whole, the 90 extra cold starts cost ~1.2 kB per span (~90 MB); summarised, what
    # remains of each is its per-module times (16 bytes per import, twice at the end when the
    # fleet table is built) and a few small objects: measured 4-10 MB. A quarter of linear fails.
    assert grown < spans * 300, f"peak grew by {grown / 1e6:.0f} MB for {spans} more spans"


def test_a_trace_written_in_many_batches_is_held_until_it_is_complete(tmp_path: Path, capsys, tight) -> None:
    """An exporter's batches: one cold start over many consecutive lines, however small the
    budget; the trace still arriving is never taken as complete."""
    lines = []
    for run in _fleet(3):
        for span in run["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            line = copy.deepcopy(run)
            line["resourceSpans"][0]["scopeSpans"][0]["spans"] = [span]
            lines.append(line)
    path = write_lines(tmp_path / "batches.jsonl", *lines)
    feed = readers.TraceFeed([path.read_bytes()], str(path), hold_spans=0)
    assert len(list(feed)) == 3 and not feed.late
    _, document = _validate(capsys, str(path))
    assert document == _whole_document([str(path)], targets.Targets())


def test_other_traffic_scattered_across_the_file_is_not_read_again(tmp_path: Path, capsys, tight) -> None:
    """Spans of a trace with no cold-start root (live requests after ready) coming back later are
    ignored: only a cold start is worth reading the file again."""
    head, tail = _split(shop(t0=T0 + 9 * 1_000_000_000))
    spans = tail["resourceSpans"][0]["scopeSpans"][0]["spans"]
    tail["resourceSpans"][0]["scopeSpans"][0]["spans"] = [s for s in spans if s.get("parentSpanId")]
    path = write_lines(tmp_path / "traffic.jsonl", head, *_fleet(3), tail)
    feed = readers.TraceFeed([path.read_bytes()], str(path), hold_spans=0)
    assert len(list(feed)) == 3 and not feed.late
    _, document = _validate(capsys, str(path))
    assert document == _whole_document([str(path)], targets.Targets())
