"""Recording from the first line we can run: the ``otel_coldstart.pth`` start-up hook.

``site`` executes the one line of ``otel_coldstart.pth`` in every interpreter of the environment.
It reads two environment variables and ``sys.argv[0]`` and does nothing else unless one applies
(about a microsecond: ``benchmarks/launch_paths.py`` measures it), so an environment with
otel-coldstart installed pays nothing for it. When one applies, ``pth_hook()`` runs:

- ``OTEL_PYTHON_COLDSTART_AUTO=1`` (set by ``otel-coldstart run``, or in a Dockerfile or a process
  manager's environment): the zero-tax launch. The recorder starts here, before ``sitecustomize``
  and the app; the distro's defaults and the configurator apply; contrib instrumentors are
  instrumented when the app first imports their library. No wrapper process, no
  ``opentelemetry.instrumentation.auto_instrumentation`` import.
- the ``opentelemetry-instrument`` wrapper process itself: it stamps its start and its ``exec``
  moment into ``OTEL_PYTHON_COLDSTART_LAUNCH``, so the app's trace can show the wrapper as a span.
- the application that wrapper started (the stamp is set): the recorder starts before the
  launcher's ``sitecustomize``, so the launcher's own work becomes spans (``launch_phases.py``).
"""

from __future__ import annotations

import os
import sys
import time

from otel_coldstart import conventions as cv

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the path of every interpreter this hook runs in
    from typing import Any, NoReturn

AUTO_ENV = "OTEL_PYTHON_COLDSTART_AUTO"
LAUNCH_ENV = "OTEL_PYTHON_COLDSTART_LAUNCH"
#: ``sys.argv[0]`` of the stock launcher's wrapper process (a console script).
STOCK_WRAPPER = cv.WRAPPER_STOCK
_CLI = "otel-coldstart"

#: The stock distro's defaults, except the OTLP protocol: http/protobuf is what the OTLP
#: specification recommends as the default, and it spares the app the grpc import after ready.
DEFAULTS = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    # With the stock distro installed beside us, make sure our configurator is the one that runs.
    "OTEL_PYTHON_CONFIGURATOR": "otel_coldstart",
}


class Launch:
    """What a wrapper process told us through ``OTEL_PYTHON_COLDSTART_LAUNCH``: which wrapper,
    and when it ``exec``ed this process (epoch ns)."""

    __slots__ = ("exec_ns", "wrapper")

    def __init__(self, wrapper: str, exec_ns: int) -> None:
        self.wrapper = wrapper
        self.exec_ns = exec_ns


def enabled(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def stamp(wrapper: str) -> str:
    """The ``OTEL_PYTHON_COLDSTART_LAUNCH`` value a wrapper sets right before its ``exec``: the
    pid tells the process it execs from a grandchild that a shell in between would start."""
    return f"{wrapper},{os.getpid()},{time.time_ns()}"


def parse_launch(value: str | None) -> Launch | None:
    if not value:
        return None
    try:
        wrapper, pid, executed = value.split(",")
        if int(pid) != os.getpid():
            return None  # not exec'd by the wrapper: its process is not ours to show
        return Launch(wrapper, int(executed))
    except ValueError:
        return None  # someone else's value: no wrapper span rather than a wrong one


def pth_hook(started_ns: int | None = None) -> None:
    """Called by ``otel_coldstart.pth`` when one of its conditions holds, with the moment the line
    began (so that importing this package is our launcher's time, not unexplained boot). Never
    raises: a broken hook must not stop an interpreter from starting."""
    start = time.perf_counter_ns() if started_ns is None else started_ns
    try:
        _dispatch(start)
    except Exception as exc:  # the application must never pay for our failure
        sys.stderr.write(f"otel-coldstart: start-up hook failed, not recording: {exc!r}\n")


def _dispatch(start_mono_ns: int) -> None:
    argv = getattr(sys, "argv", None) or [""]
    program = os.path.basename(argv[0])
    if program == STOCK_WRAPPER:
        _stamp_at_exec(STOCK_WRAPPER)
        return
    if program == _CLI:
        # ``otel-coldstart run COMMAND``: exec here, from site, before the console script loads
        # (its ``import re``) and our CLI: this process's life is the app's start-up time. On any
        # failure the CLI runs as usual and reports it.
        if argv[1:2] == ["run"] and argv[2:3] not in (["-h"], ["--help"]):
            command = argv[3:] if argv[2:3] == ["--"] else argv[2:]
            if command:
                _exec_run(command)
        return  # our own command line (validate, flush, run's wrapper) is a tool, not an app
    launch = parse_launch(os.environ.pop(LAUNCH_ENV, None))
    if launch is not None and launch.wrapper == STOCK_WRAPPER:
        from otel_coldstart.launch import launch_phases

        launch_phases.arm_under_stock_launcher(start_mono_ns, launch)
    elif enabled(os.environ.get(AUTO_ENV)):
        activate(start_mono_ns, launch)


def _stamp_at_exec(wrapper: str) -> None:
    """In a wrapper process: put the stamp into the environment at the moment it ``exec``s.

    ``opentelemetry-instrument`` ends in ``os.execl``, which calls ``os.execv``; the stamp must
    carry the ``exec`` moment itself, so it is taken there.
    """
    real_execv = os.execv

    def execv(path: Any, args: Any) -> NoReturn:
        os.environ[LAUNCH_ENV] = stamp(wrapper)
        try:
            real_execv(path, args)
        except BaseException:
            os.environ.pop(LAUNCH_ENV, None)
            raise

    os.execv = execv


def run(command: list[str]) -> int:
    """``otel-coldstart run [--] COMMAND...``: exec COMMAND with the zero-tax launch switched on.

    Returns only when COMMAND cannot be executed (the shell's codes, ``exit_codes.py``); otherwise
    COMMAND's exit status is the process's own.
    """
    from otel_coldstart import exit_codes

    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        return exit_codes.fail("run needs a COMMAND, e.g. otel-coldstart run python app.py")
    exc = _exec_run(command)
    if exc is None:  # pragma: no cover - execvp does not return
        return exit_codes.OK
    code = exit_codes.NOT_FOUND if isinstance(exc, FileNotFoundError) else exit_codes.NOT_EXECUTABLE
    return exit_codes.fail(f"cannot run {command[0]}: {exc.strerror or exc}", code)


def _exec_run(command: list[str]) -> OSError | None:
    """Exec COMMAND (after an optional ``--``) with the zero-tax launch on; returns only on failure,
    with the environment as it was."""
    previous = os.environ.get(AUTO_ENV)
    os.environ[AUTO_ENV] = "1"
    os.environ[LAUNCH_ENV] = stamp(cv.WRAPPER_RUN)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        os.environ.pop(LAUNCH_ENV, None)
        if previous is None:
            os.environ.pop(AUTO_ENV, None)
        else:
            os.environ[AUTO_ENV] = previous
        return exc
    return None  # pragma: no cover - execvp does not return


def activate(start_mono_ns: int, launch: Launch | None = None) -> None:
    """The zero-tax launch: what the distro, configurator and instrumentors do under
    ``opentelemetry-instrument``, without the launcher. Idempotent."""
    from otel_coldstart.deliver import lifecycle
    from otel_coldstart.launch import arming, launch_phases, lazy_instrumentors
    from otel_coldstart.record import timeline

    if timeline.current() is not None:
        return
    arming.arm(cv.ORIGIN_AUTO)
    launch_phases.hook_started(start_mono_ns, launch)
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    _gevent_patch()
    lifecycle.request_sdk(_instrumentation_version)  # looked up after ready
    lazy_instrumentors.install()
    launch_phases.phase(cv.LAUNCHER_ACTIVATE_SPAN, cv.STEP_ACTIVATE, start_mono_ns, time.perf_counter_ns())
    launch_phases.launcher_done()


def _gevent_patch() -> None:
    # What the stock launcher does first, for the same variable: monkey-patching must precede
    # every other import of the app.
    if os.environ.get("OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH") == "patch_all":
        try:
            from gevent import monkey  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            sys.stderr.write("otel-coldstart: gevent patch asked for, but gevent is not installed\n")
            return
        monkey.patch_all()


def _instrumentation_version() -> str | None:
    try:
        from opentelemetry.instrumentation.version import __version__
    except ImportError:
        return None
    return __version__
