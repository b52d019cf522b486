"""The launcher's own cost as spans: the wrapper process, the auto-instrumentation steps, each
instrumentor.

The records made here are ordinary timeline records (``coldstart.kind = launcher``); the span
builder puts those that start before the hook under ``coldstart.boot`` and the others under
``coldstart.launcher``. Under ``opentelemetry-instrument`` the steps are timed by replacing the
launcher's own functions right after their modules are imported (post-import hooks), so nothing
is imported earlier than the launcher would import it.
"""

from __future__ import annotations

import os
import time

from otel_coldstart import conventions as cv
from otel_coldstart.deliver import lifecycle
from otel_coldstart.launch import arming
from otel_coldstart.record import imports, memory, timeline

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    from collections.abc import Callable
    from typing import Any

#: The stock launcher's steps, by the name of the function in
#: ``opentelemetry.instrumentation.auto_instrumentation`` that does each: (span name, step).
STOCK_STEPS = {
    "_load_distro": (cv.LAUNCHER_DISTRO_SPAN, cv.STEP_DISTRO),
    "_load_configurators": (cv.LAUNCHER_CONFIGURATOR_SPAN, cv.STEP_CONFIGURATOR),
    "_load_instrumentors": (cv.LAUNCHER_INSTRUMENTORS_SPAN, cv.STEP_INSTRUMENTORS),
}
#: The timeline mark where coldstart.launcher ends and coldstart.main begins (spans.py).
LAUNCHER_DONE = "launcher_done"
#: Our instrumentors' entry-point names (pyproject.toml).
OUR_INSTRUMENTORS = ("coldstart_imports", "coldstart_services")


def _to_mono(tl: timeline.Timeline, epoch_ns: int) -> int:
    return tl.mono_anchor_ns + (epoch_ns - tl.wall_anchor_ns)


def phase(name: str, step_name: str, start_ns: int, end_ns: int, attrs: dict[str, Any] | None = None) -> None:
    """Record a launcher step that already happened (monotonic ns)."""
    opened = timeline.open_record(cv.KIND_LAUNCHER, name, {cv.LAUNCHER_STEP: step_name, **(attrs or {})})
    if opened is None:
        return
    timeline.close_record(opened)
    record = opened[0]
    record.start = start_ns
    record.end = end_ns


def step(name: str, step_name: str, attrs: dict[str, Any] | None = None) -> _Step:
    """Record a launcher step as it runs; imports inside it nest under it."""
    return _Step(name, step_name, attrs)


class _Step:
    # A class, not contextlib.contextmanager: contextlib (functools, collections) is not on the
    # start-up path of a program that does not import it.
    __slots__ = ("attrs", "name", "opened", "step_name")

    def __init__(self, name: str, step_name: str, attrs: dict[str, Any] | None) -> None:
        self.name, self.step_name, self.attrs = name, step_name, attrs
        self.opened: Any = None

    def __enter__(self) -> None:
        attrs = {cv.LAUNCHER_STEP: self.step_name, **(self.attrs or {})}
        self.opened = timeline.open_record(cv.KIND_LAUNCHER, self.name, attrs)

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if self.opened is None:
            return
        # _describe: whatever the exception's __str__ does, the application gets its own exception.
        error = None if exc is None else imports._describe(exc)
        timeline.close_record(self.opened, error)


def instrument_step(name: str) -> _Step:
    """One instrumentor's load and ``instrument()`` (``instrument <entry point name>``)."""
    return step(cv.INSTRUMENT_SPAN_PREFIX + name, cv.STEP_INSTRUMENT, {cv.INSTRUMENTOR_NAME: name})


def hook_started(start_mono_ns: int, launch: Any = None) -> None:
    """Our hook began at ``start_mono_ns``: there ``coldstart.boot`` ends. A wrapper's stamp
    (``autostart.Launch``) becomes the ``coldstart.wrapper`` span inside it: the wrapper process
    (the same process, before its ``exec``) from its creation to the ``exec``."""
    tl = timeline.current()
    if tl is None:
        return
    tl.hook_installed_ns = min(tl.hook_installed_ns, start_mono_ns)
    if launch is not None:
        exec_mono = _to_mono(tl, launch.exec_ns)
        created = min(_to_mono(tl, lifecycle.process_start_ns()), exec_mono)
        phase(cv.WRAPPER_SPAN, cv.STEP_WRAPPER, created, exec_mono, {cv.LAUNCHER_WRAPPER: launch.wrapper})


def launcher_done() -> None:
    current = timeline.current()
    if current is not None:
        current.mark(LAUNCHER_DONE)
        # Where the launch's memory ends and the app's begins, on every launch path.
        memory.take_snapshot(LAUNCHER_DONE)


def _ours_may_run() -> bool:
    """Would the stock launcher start our recorder in this process at all?"""
    if os.environ.get("OTEL_PYTHON_DISTRO", "otel_coldstart") == "otel_coldstart":
        return True
    disabled = {n.strip() for n in os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}
    return not ("*" in disabled or disabled.issuperset(OUR_INSTRUMENTORS))


def arm_under_stock_launcher(start_mono_ns: int, launch: Any) -> None:
    """The app process of ``opentelemetry-instrument``, before its ``sitecustomize`` runs: start
    recording now, and time the launcher's steps once its modules are imported."""
    if not _ours_may_run():
        return
    from otel_coldstart.record.post_import import when_imported

    arming.arm(cv.ORIGIN_LAUNCHER)
    hook_started(start_mono_ns, launch)
    phase(cv.LAUNCHER_ACTIVATE_SPAN, cv.STEP_ACTIVATE, start_mono_ns, time.perf_counter_ns())
    when_imported("opentelemetry.util._importlib_metadata", _time_entry_points)
    when_imported("opentelemetry.instrumentation.auto_instrumentation", _time_stock_steps)
    when_imported("sitecustomize", _stock_launcher_done)


def _stock_launcher_done(module: Any) -> None:
    # The launcher's work in this process is its sitecustomize import; the post-instrument hook
    # marks its end a few microseconds before that import returns, which would leave the import
    # span sticking out of coldstart.launcher.
    current = timeline.current()
    if current is not None and not timeline.state.ready:
        current.marks[LAUNCHER_DONE] = time.perf_counter_ns()
        # Where the launcher's memory ends and the app's begins: with the hook armed from the
        # .pth, ``hook_installed`` is taken before the launcher's own imports (~12 MB).
        memory.take_snapshot(LAUNCHER_DONE)


def _timed(name: str, step_name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        with step(name, step_name):
            return function(*args, **kwargs)

    timed.__wrapped__ = function  # type: ignore[attr-defined]
    return timed


def _time_stock_steps(module: Any) -> None:
    # _initialize looks these up as module globals at call time, after this hook has run.
    for attribute, (name, step_name) in STOCK_STEPS.items():
        function = getattr(module, attribute, None)
        if function is not None:
            setattr(module, attribute, _timed(name, step_name, function))


def _time_entry_points(module: Any) -> None:
    # The launcher's modules bind ``entry_points`` by ``from ... import`` after this hook has run.
    original = module.entry_points

    def entry_points(*args: Any, **kwargs: Any) -> Any:
        group = str(kwargs.get("group", ""))
        with step(cv.LAUNCHER_ENTRY_POINTS_SPAN, cv.STEP_ENTRY_POINTS, {cv.LAUNCHER_GROUP: group}):
            return original(*args, **kwargs)

    entry_points.__wrapped__ = original  # type: ignore[attr-defined]
    module.entry_points = entry_points
