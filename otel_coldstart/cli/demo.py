"""``otel-coldstart demo``: trace the bundled demo app under the launcher and judge the trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def demo_app() -> Path:
    """The demo app: ``examples/`` of a source checkout, or the copy shipped in the wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "examples" / "demo_app.py", package / "examples" / "demo_app.py"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("the demo app (examples/demo_app.py) is not installed")


def launcher_command(script: Path, *args: str) -> list[str]:
    """``opentelemetry-instrument <this python> script``: the interpreter running us, not PATH's."""
    launcher = Path(sys.executable).with_name("opentelemetry-instrument")
    if launcher.is_file():
        return [str(launcher), sys.executable, str(script), *args]
    code = "from opentelemetry.instrumentation.auto_instrumentation import run; run()"
    return [sys.executable, "-c", code, sys.executable, str(script), *args]


def traced_env(trace_file: str, service_name: str = "coldstart-demo") -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "OTEL_SERVICE_NAME": service_name,
            # Pick ours explicitly: the stock opentelemetry-distro may be installed beside us.
            "OTEL_PYTHON_DISTRO": "otel_coldstart",
            "OTEL_PYTHON_CONFIGURATOR": "otel_coldstart",
            # No collector in the demo: the trace goes to a file only.
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_PYTHON_COLDSTART_TRACE_FILE": trace_file,
        }
    )
    return env


def run(trace_file: str) -> int:
    """Run the demo app under the launcher, its trace going to ``trace_file``; an exit code.

    Judging the trace is the CLI's part (``otel-coldstart demo`` then validates it).
    """
    from otel_coldstart.exit_codes import BAD_INPUT, OK, fail

    try:
        script = demo_app()
    except FileNotFoundError as exc:
        return fail(str(exc), BAD_INPUT)
    path = Path(trace_file)
    path.unlink(missing_ok=True)
    command = launcher_command(script)
    print(f"$ opentelemetry-instrument python {script}  (trace -> {path})", flush=True)
    completed = subprocess.run(command, env=traced_env(str(path)), check=False)
    if completed.returncode != 0:
        return fail(f"the demo app exited with status {completed.returncode}", BAD_INPUT)
    print()
    return OK
