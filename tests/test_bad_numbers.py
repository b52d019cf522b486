"""Nonsense numbers, bombs and broken pipes: one line on stderr and exit 2, never a verdict, never a
traceback. These are the cases the fuzz test (test_readers_property.py) is seeded with."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures.bad_input import CASES
from fixtures.builder import shop, to_jaeger_classic, write_lines

from otel_coldstart import conventions as cv
from otel_coldstart.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_numbers_are_bad_input(case: str, tmp_path: Path, capsys) -> None:
    mutate, message = CASES[case]
    document = shop()
    mutate(document)
    path = write_lines(tmp_path / "t.jsonl", document)
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("otel-coldstart: error: ")
    assert re.search(message, captured.err), captured.err
    # The same input as a diff side is bad input too.
    good = write_lines(tmp_path / "good.jsonl", shop())
    assert main(["diff", str(good), str(path)]) == 2


def test_bad_numbers_in_jaeger_json(tmp_path: Path, capsys) -> None:
    document = to_jaeger_classic(shop())
    span = document["data"][0]["spans"][0]
    span["tags"].append({"key": cv.MEMORY_PEAK_RSS, "type": "float64", "value": "NaN"})
    path = tmp_path / "jaeger.json"
    path.write_text(json.dumps(document))
    assert main(["validate", str(path)]) == 2
    assert "expected a finite number" in capsys.readouterr().err
    span["tags"].pop()
    span["duration"] = -3
    path.write_text(json.dumps(document))
    assert main(["validate", str(path)]) == 2
    assert "duration is out of range" in capsys.readouterr().err


def _run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=ROOT, **kwargs
    )


def test_gzip_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.jsonl.gz"
    # 1 GiB of zeros packs into ~1 MB; inflating it whole is what the validator must not do. Made
    # in the child as 1,024 gzip members of 1 MB of zeros each (what ``cat`` of gzip files makes,
    # and compressed once: level 9 over the whole GiB took seconds of CPU): this process's heap
    # stays as the other tests expect it.
    code = (
        "import gzip, resource, sys\n"
        "from otel_coldstart.cli import main\n"
        "member = gzip.compress(bytes(1 << 20), compresslevel=9)\n"
        "with open(sys.argv[1], 'wb') as handle:\n"
        "    handle.write(member * 1024)\n"
        "code = main(['validate', sys.argv[1]])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = _run("-c", code, str(bomb))
    error, peak_mb = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "decompression bomb" in error, done.stderr
    assert int(peak_mb) < 400, f"peak RSS {peak_mb} MB while refusing a 1 GiB bomb"


def test_a_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", shop())
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_coldstart.cli", "validate", str(path), "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `| head` that has read enough: every write now fails with EPIPE
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) in (0, 1)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


def test_screenshot_of_a_missing_page_is_one_line(tmp_path: Path) -> None:
    done = _run("scripts/screenshot_html.py", str(tmp_path / "missing.html"), str(tmp_path / "o.png"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no such page" in done.stderr
