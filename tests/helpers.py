"""Shared test helpers: run a script under the real launcher and read back its cold-start trace."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from otel_coldstart.cli.demo import launcher_command, traced_env
from otel_coldstart.validate.model import Trace


@dataclass
class Run:
    completed: subprocess.CompletedProcess
    trace_file: Path

    def traces(self) -> list[Trace]:
        from otel_coldstart.validate.readers import read_file

        return read_file(str(self.trace_file))[1]

    def trace(self) -> Trace:
        traces = self.traces()
        assert len(traces) == 1, f"expected one trace, got {len(traces)}"
        return traces[0]


def run_instrumented(
    script: Path,
    trace_file: Path,
    *args: str,
    python_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> Run:
    command = launcher_command(script, *args)
    if python_args:
        # launcher_command is [launcher, python, script, ...]: put interpreter options after python.
        index = command.index(sys.executable, 1 if command[0] != sys.executable else 3)
        command[index + 1 : index + 1] = list(python_args)
    full_env = traced_env(str(trace_file), service_name="coldstart-test")
    # Each test run spools (if it ever must) beside its own trace file, never in the user's cache.
    full_env["OTEL_PYTHON_COLDSTART_SPOOL_DIR"] = str(trace_file.parent / "spool")
    full_env.update(env or {})
    full_env = {k: v for k, v in full_env.items() if v is not None}
    completed = subprocess.run(
        command, env=full_env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    return Run(completed, trace_file)


_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S.*)$")


def parse_importtime(stderr: str) -> list[tuple[str, str | None]]:
    """``python -X importtime`` output -> [(module, parent module or None)], in completion order.

    Lines come in post-order: a module's line follows its children's, each level indented by
    two more spaces.
    """
    pending: dict[int, list[str]] = {}
    edges: list[tuple[str, str | None]] = []
    for line in stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if not match:
            continue
        depth = (len(match.group(3)) - 1) // 2
        name = match.group(4).strip()
        for child in pending.pop(depth + 1, []):
            edges.append((child, name))
        pending.setdefault(depth, []).append(name)
    for names in pending.values():
        edges.extend((name, None) for name in names)
    return edges


def import_tree(root: Path, modules: int, per_package: int = 100) -> None:
    """``root/bigtree``: ``modules`` one-line modules in packages of ``per_package``, all imported
    by ``import bigtree`` (large cold starts for the delivery tests and the exit benchmarks)."""
    package = root / "bigtree"
    package.mkdir(parents=True)
    lines = []
    for p in range((modules + per_package - 1) // per_package):
        sub = package / f"p{p}"
        sub.mkdir()
        names = [f"m{i}" for i in range(min(per_package, modules - p * per_package))]
        for name in names:
            (sub / f"{name}.py").write_text("X = 1\n")
        (sub / "__init__.py").write_text("".join(f"from . import {name}\n" for name in names))
        lines.append(f"from . import p{p}\n")
    (package / "__init__.py").write_text("".join(lines))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}


def auto_env(trace_file: Path, **extra: str) -> dict[str, str]:
    """A clean environment traced by environment activation's settings: the trace to
    ``trace_file`` only (no exporter), the spool beside it. ``extra`` is added last."""
    env = clean_env()
    env.update(
        OTEL_SERVICE_NAME="coldstart-test",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_COLDSTART_TRACE_FILE=str(trace_file),
        OTEL_PYTHON_COLDSTART_SPOOL_DIR=str(trace_file.parent / "spool"),
    )
    env.update(extra)
    return env


def flush_into_trace_file(spool_dir: Path) -> subprocess.CompletedProcess:
    """``otel-coldstart flush`` with no exporter: what a user does when a process could not build
    its trace within its exit budget (a starved machine, a huge trace). The raw copy waiting in
    the spool names its trace file; flush builds it there, and leaves the spool empty."""
    flushed = subprocess.run(
        [sys.executable, "-m", "otel_coldstart.cli", "flush", "--spool-dir", str(spool_dir)],
        env={**clean_env(), "OTEL_TRACES_EXPORTER": "none"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    return flushed
