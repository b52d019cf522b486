"""Recording from the first line we can run: the ``otel_coldstart.pth`` start-up hook.

``site`` executes the one line of ``otel_coldstart.pth`` in every interpreter of the environment.
It reads three environment variables and ``sys.argv[0]`` and does nothing else unless one applies
(a few microseconds: ``benchmarks/launch_paths.py`` measures it), so an environment with
otel-coldstart installed pays nothing for it. When one applies, ``pth_hook()`` runs:

- ``OTEL_PYTHON_COLDSTART_AUTO=1`` (set by ``otel-coldstart run``, or in a Dockerfile or a process
  manager's environment): the zero-tax launch. The recorder starts here, before ``sitecustomize``
  and the app; the distro's defaults and the configurator apply; contrib instrumentors are
  instrumented when the app first imports their library. No wrapper process, no
  ``opentelemetry.instrumentation.auto_instrumentation`` import.
- the ``opentelemetry-instrument`` wrapper process itself: it stamps its start and its ``exec``
  moment into ``OTEL_PYTHON_COLDSTART_LAUNCH``, so the app's trace can show the wrapper as a span.
- the application that wrapper started (the stamp is set), or a Python child of it (the
  launcher's directory is on ``PYTHONPATH``): with our distro chosen, our activation does the
  launcher's work and stands in for its ``sitecustomize``; with another, the recorder starts
  before that ``sitecustomize``, so the launcher's own work becomes spans (``launch_phases.py``).
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
DISTRO_ENV = "OTEL_PYTHON_DISTRO"
DISTRO = "otel_coldstart"
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
        _wrap_like_the_stock_wrapper(argv)  # returns only where the stock wrapper must do it
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
    if launch is None or launch.wrapper == STOCK_WRAPPER:
        # The app the stock wrapper started, or a Python child of a traced process: the child
        # inherits the launcher's PYTHONPATH and would run its sitecustomize too.
        stock_site = _stock_sitecustomize() if _ours_chosen() else None
        if stock_site is not None:
            # Our distro and configurator are the ones the launcher would load: do what they and
            # the launcher's sitecustomize would do, minus the launcher (see _StandIn).
            activate(start_mono_ns, launch, cv.ORIGIN_LAUNCHER, stock_site)
            return
    if launch is not None and launch.wrapper == STOCK_WRAPPER:
        from otel_coldstart.launch import launch_phases

        launch_phases.arm_under_stock_launcher(start_mono_ns, launch)
    elif enabled(os.environ.get(AUTO_ENV)):
        activate(start_mono_ns, launch)


def _stamp_at_exec(wrapper: str) -> None:
    """In a wrapper process: put the stamp into the environment at the moment it ``exec``s, and
    choose our distro unless ``OTEL_PYTHON_DISTRO`` names one.

    With the stock ``opentelemetry-distro`` installed too, the launcher takes whichever distro its
    entry-point scan meets first (directory order: it differs between machines). That one was often
    the stock distro, whose configurator sets the whole SDK up before the app runs (~0.4 s of CPU
    here) and leaves ours "not loaded": installing otel-coldstart must be enough to get it.

    ``opentelemetry-instrument`` ends in ``os.execl``, which calls ``os.execv``; the stamp must
    carry the ``exec`` moment itself, so it is taken there.
    """
    real_execv = os.execv

    def execv(path: Any, args: Any) -> NoReturn:
        chosen = DISTRO_ENV not in os.environ
        if chosen:
            os.environ[DISTRO_ENV] = DISTRO
        os.environ[LAUNCH_ENV] = stamp(wrapper)
        try:
            real_execv(path, args)
        except BaseException:
            os.environ.pop(LAUNCH_ENV, None)
            if chosen:
                os.environ.pop(DISTRO_ENV, None)
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


def activate(
    start_mono_ns: int,
    launch: Launch | None = None,
    origin: str = cv.ORIGIN_AUTO,
    stock_site: str | None = None,
) -> None:
    """The zero-tax launch: what the distro, configurator and instrumentors do under
    ``opentelemetry-instrument``, without the launcher. Idempotent.

    ``stock_site``: the launcher's ``sitecustomize.py``, which we stand in for. The instrumentors
    are then installed when ``site`` imports ``sitecustomize``, after every ``.pth`` file has run
    (as the launcher does it): a later ``.pth`` file may put a distribution on ``sys.path``."""
    from otel_coldstart.deliver import lifecycle
    from otel_coldstart.launch import arming, launch_phases, lazy_instrumentors
    from otel_coldstart.record import timeline

    if timeline.current() is not None:
        return
    arming.arm(origin)
    launch_phases.hook_started(start_mono_ns, launch)
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    _gevent_patch()
    lifecycle.request_sdk(_instrumentation_version)  # looked up after ready
    if stock_site is None:
        lazy_instrumentors.install()
    activated = time.perf_counter_ns()
    launch_phases.phase(cv.LAUNCHER_ACTIVATE_SPAN, cv.STEP_ACTIVATE, start_mono_ns, activated)
    if stock_site is None:
        launch_phases.launcher_done()
        return
    from otel_coldstart.record.post_import import when_imported

    sys.meta_path.insert(0, _StandIn(stock_site))
    # The launch ends once ``import sitecustomize`` has returned: marked inside it, the import's
    # span would stick out of coldstart.launcher.
    when_imported("sitecustomize", lambda _module: launch_phases.launcher_done())


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


#: Where the stock launcher's ``sitecustomize`` lives, below a ``sys.path`` entry.
STOCK_SITE_DIR = os.path.join("opentelemetry", "instrumentation", "auto_instrumentation")


def _stock_site_dir() -> str | None:
    """The directory the stock wrapper puts first on ``PYTHONPATH`` (its package's own), found
    without importing it: the first ``sys.path`` entry holding the package."""
    for entry in sys.path:
        directory = os.path.abspath(os.path.join(entry or ".", STOCK_SITE_DIR))
        if os.path.isfile(os.path.join(directory, "__init__.py")):
            return directory
    return None


def _executable(path: str) -> bool:
    return os.path.exists(path) and os.access(path, os.F_OK | os.X_OK) and not os.path.isdir(path)


def _which(command: str) -> str | None:
    """``shutil.which`` for POSIX (``shutil`` costs the wrapper ~5 ms of imports)."""
    if os.path.dirname(command):
        return command if _executable(command) else None
    for directory in os.environ["PATH"].split(os.pathsep):
        candidate = os.path.join(directory, command)
        if _executable(candidate):
            return candidate
    return None


def _wrap_like_the_stock_wrapper(argv: list[str]) -> None:
    """In ``opentelemetry-instrument``'s wrapper process, before its console script runs: do the
    wrapper's whole job (``auto_instrumentation.run()``: ``PYTHONPATH``, then ``exec`` the
    command) without importing the launcher, which costs the wrapper ~100 ms of CPU.

    Only for the command line it parses without its options table (``opentelemetry-instrument
    COMMAND ARGS...``, no ``--``): any option of its own, or anything unusual (no ``PATH``, a
    command not found, an ``exec`` that fails), returns with nothing changed, and the stock
    wrapper does it (and reports it) as always.
    """
    if os.name != "posix" or len(argv) < 2 or argv[1].startswith("-") or "--" in argv[2:]:
        return
    if "PATH" not in os.environ:
        return
    site_dir = _stock_site_dir()
    executable = _which(argv[1])
    if site_dir is None or executable is None:
        return
    saved = {key: os.environ.get(key) for key in ("PYTHONPATH", DISTRO_ENV, LAUNCH_ENV)}
    # The same PYTHONPATH as auto_instrumentation.run() makes, step by step.
    python_path_value = os.environ.get("PYTHONPATH")
    python_path = python_path_value.split(os.pathsep) if python_path_value else []
    cwd = os.getcwd()
    if cwd not in python_path:
        python_path.insert(0, cwd)
    python_path = [path for path in python_path if path != site_dir]
    python_path.insert(0, site_dir)
    os.environ["PYTHONPATH"] = os.pathsep.join(python_path)
    os.environ.setdefault(DISTRO_ENV, DISTRO)
    os.environ[LAUNCH_ENV] = stamp(STOCK_WRAPPER)
    try:
        os.execv(executable, [executable, *argv[2:]])
    except OSError:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _ours_chosen() -> bool:
    """Would the stock launcher load our distro and configurator (and no other) in this process?"""
    return (
        os.environ.get(DISTRO_ENV) == DISTRO and os.environ.get("OTEL_PYTHON_CONFIGURATOR", DISTRO) == DISTRO
    )


def _stock_sitecustomize() -> str | None:
    """The stock launcher's ``sitecustomize.py``, if it is the one ``site`` is about to import
    (the wrapper put its directory first on ``PYTHONPATH``)."""
    entries = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if not entries[0].endswith(STOCK_SITE_DIR):
        return None
    path = os.path.join(entries[0], "sitecustomize.py")
    return path if os.path.isfile(path) else None


class _StandIn:
    """Serves ``import sitecustomize`` in place of the launcher's module, once.

    Our activation has done what the launcher's ``sitecustomize`` would do with our distro and
    configurator chosen (the gevent patch, the distro's defaults, the configurator), except the
    instrumentors: those are installed here, when ``site`` imports ``sitecustomize``, at the
    moment the launcher would (the pre- and post-instrument hooks, each instrumentor on the
    first import of its library). ``site`` does not import the launcher (~150 ms of CPU,
    ``packaging``, ``importlib.metadata``, its own entry-point scan) to do it again. Like the
    launcher's module, ours shadows any other ``sitecustomize`` on the path, and its
    ``__file__`` is the launcher's file.
    """

    def __init__(self, stock_site: str) -> None:
        self.stock_site = stock_site

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "sitecustomize":
            return None
        if self in sys.meta_path:  # someone may have rebuilt sys.meta_path meanwhile
            sys.meta_path.remove(self)
        # importlib's own ModuleSpec, without importing importlib.machinery for it.
        spec_type: Any = type(sys.__spec__) if sys.__spec__ is not None else None
        if spec_type is None:
            from importlib.machinery import ModuleSpec as spec_type
        return spec_type(fullname, self, origin=self.stock_site)

    def create_module(self, spec: Any) -> None:
        return None  # the default module

    def exec_module(self, module: Any) -> None:
        from otel_coldstart import conventions as cv
        from otel_coldstart.launch import launch_phases, lazy_instrumentors

        module.__file__ = self.stock_site
        module.__doc__ = "Stood in for by otel-coldstart: the launch was done by its start-up hook."
        try:
            with launch_phases.step(cv.LAUNCHER_INSTRUMENTORS_SPAN, cv.STEP_INSTRUMENTORS):
                lazy_instrumentors.install()
        except Exception as exc:  # the application must never pay for our failure
            sys.stderr.write(f"otel-coldstart: installing the instrumentors failed: {exc!r}\n")
