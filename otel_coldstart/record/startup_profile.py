"""What the main thread did between imports, and which code the program ran before ready.

Two cheap observers, both started with the recorder and stopped at the ready moment:

- a sampler: a raw thread (``_thread``, invisible to ``threading.enumerate()``) that every
  ``OTEL_PYTHON_COLDSTART_PROFILE_INTERVAL_MS`` reads the main thread's stack as (code, line)
  pairs. After ready, the samples that fell outside every import and service record become
  code spans (``conventions.KIND_CODE``) under ``coldstart.main``, named after the program's top-level call
  (``call execute_from_command_line``), so the main phase is explained, not only its imports;
- on Python 3.12+, ``sys.monitoring``: a ``PY_START`` callback that notes each code object once
  (it returns ``DISABLE``, so a function costs one callback in the whole process), with the
  record open at that moment. Before 3.12 the samples give the same evidence, coarser.

"Used before ready" (root attribute ``conventions.USED_MODULES``) is a module whose code ran while
no import of its own package was in progress: ``FastAPI()`` at module level of the app, pip's
``main()``. Code that a module runs while it is itself being imported is not evidence that the
program needs it. The validator keeps such modules out of its lazy-load advice.

Everything costly (file -> module mapping, grouping samples) happens after ready on the thread
that builds the trace; the main thread pays one ``PY_START`` callback per distinct function on
3.12+, and the GIL hand-over of each sample.
"""

from __future__ import annotations

import _thread
import bisect
import os
import sys
import time
import types

from otel_coldstart import conventions as cv
from otel_coldstart.record import threads, timeline
from otel_coldstart.record.timeline import AnyRecord, ImportRecord, Record, Timeline

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    from typing import Any

_now = time.perf_counter_ns
_sleep = time.sleep
_start_thread = _thread.start_new_thread
_get_ident = _thread.get_ident

#: At most this many samples (a minute at 1 ms): a start-up that never becomes ready stays bounded.
MAX_SAMPLES = 60_000
#: Frames kept per sample, innermost first: deep enough for import chains.
MAX_DEPTH = 128
#: Files whose frames are never the program's own work.
_MACHINERY = (
    "<frozen importlib",
    "importlib/__init__",
    "/runpy.py",
    "<frozen runpy>",
    "/otel_coldstart/",
    "/opentelemetry/instrumentation/auto_instrumentation/",
)

_TOOL_NAME = "otel-coldstart"


class _Profile:
    def __init__(self, interval_ns: int, main_tid: int) -> None:
        self.interval_ns = interval_ns
        self.main_tid = main_tid
        self.samples: list[tuple[int, tuple[tuple[Any, int], ...]]] = []
        #: (code, record open at its first call or None): Python 3.12+ only.
        self.first_calls: list[tuple[Any, Any]] = []
        self.tool_id: int | None = None
        self.stopped = False


_profile: _Profile | None = None

#: Set by the exit path (``deliver/lifecycle.py``): the ``time.monotonic()`` by which the exit's
#: own work must be done. With it set, the samples are read only if that fits (``_fits``).
exit_deadline: float | None = None
#: CPU seconds the read-out costs per module loaded and per sampled frame: 127 ms for 20,000
#: modules and 66,000 frames on an idle machine (1.5 us per unit), 2.7 us on a busy one.
READ_COST_PER_UNIT_S = 2e-6
#: At exit, the read-out may take at most this share of the time left: the raw copy, the
#: interpreter's teardown and the send come after it, and the copy is what must not be lost.
READ_SHARE = 0.25
#: A read-out estimated at most this CPU is always done: a small app's (a few thousand modules
#: and frames) fits any exit, and dropping its evidence would save nothing worth having.
ALWAYS_READ_CPU_S = 0.025


def start(interval_ms: float) -> None:
    """Start observing (idempotent); ``interval_ms <= 0`` turns both observers off."""
    global _profile
    if _profile is not None or interval_ms <= 0 or timeline.state.timeline is None:
        return
    profile = _Profile(int(interval_ms * 1_000_000), threads.main_ident())
    _profile = profile
    _start_monitoring(profile)
    threads.start_without_signals(_start_thread, _sample_loop, (profile,))
    timeline.on_ready(_at_ready)
    os.register_at_fork(after_in_child=_stop_in_child)


def _start_monitoring(profile: _Profile) -> None:
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None:
        return
    for tool in (4, 3):  # the ids no standard tool claims (debugger 0, coverage 1, profiler 2, optimizer 5)
        if monitoring.get_tool(tool) is None:
            try:
                monitoring.use_tool_id(tool, _TOOL_NAME)
            except ValueError:
                continue
            break
    else:
        return
    profile.tool_id = tool
    calls = profile.first_calls
    current = timeline.current_record.get
    disable = monitoring.DISABLE

    def started(code: Any, offset: int) -> Any:
        calls.append((code, current()))
        return disable

    monitoring.register_callback(tool, monitoring.events.PY_START, started)
    monitoring.set_events(tool, monitoring.events.PY_START)


def _stop_monitoring(profile: _Profile) -> None:
    tool, profile.tool_id = profile.tool_id, None
    if tool is None:
        return
    monitoring = getattr(sys, "monitoring")  # noqa: B009 (absent before 3.12; mypy checks 3.11)
    try:
        monitoring.set_events(tool, 0)
        monitoring.register_callback(tool, monitoring.events.PY_START, None)
        monitoring.free_tool_id(tool)
    except ValueError:
        pass


def _sample_loop(profile: _Profile) -> None:
    frames_of = sys._current_frames
    state = timeline.state
    interval_s = profile.interval_ns / 1e9
    samples = profile.samples
    main_tid = profile.main_tid
    with timeline.suppressed():
        while not state.ready and not profile.stopped and len(samples) < MAX_SAMPLES:
            _sleep(interval_s)
            frame = frames_of().get(main_tid)
            now = _now()
            stack: list[tuple[Any, int]] = []
            while frame is not None and len(stack) < MAX_DEPTH:
                stack.append((frame.f_code, frame.f_lasti))  # f_lineno costs 5x more: lines come later
                frame = frame.f_back
            del frame
            samples.append((now, tuple(stack)))
        # One last look at the frames is enough: drop them (and what they hold) now.
        del samples[MAX_SAMPLES:]


def _stop_in_child() -> None:
    global _profile
    profile = _profile
    if profile is not None:
        profile.stopped = True
        _stop_monitoring(profile)
    _profile = None


def _at_ready(frozen: Timeline) -> None:
    """On the build thread: stop, then turn what was seen into records and root attributes.

    Never raises: a profile that cannot be read is left out, the cold start is still built."""
    profile = _profile
    if profile is None:
        return
    profile.stopped = True
    _stop_monitoring(profile)
    try:
        if not _fits(profile):
            # Code spans and the evidence of what was used are analysis; the exit budget is the
            # promise. The validator reads the trace as one without a profile, and says why.
            frozen.root_attributes[cv.PROFILE_SKIPPED] = cv.PROFILE_SKIPPED_EXIT_BUDGET
            return
        _read(profile, frozen)
    except Exception:
        frozen.root_attributes.pop(cv.USED_MODULES, None)
    finally:
        # Read once: the samples' frames and code objects would otherwise stay alive (tens of
        # thousands of tuples, for the interpreter's teardown to collect at exit).
        profile.samples.clear()
        profile.first_calls.clear()
        _children_cache.clear()


def _starvation() -> float:
    """Wall over CPU time of this process so far, where the kernel tells (Linux): 1 idle, 5-10
    beside busy processes on 2 cores."""
    from otel_coldstart.record.process_start import PROCESS_SCHEDSTAT, run_and_wait_ns

    found = run_and_wait_ns(PROCESS_SCHEDSTAT)
    if found is None or found[0] <= 0:
        return 1.0
    return (found[0] + found[1]) / found[0]


def _fits(profile: _Profile) -> bool:
    """Outside an exit, always. At exit, whether the read-out's estimate, scaled by how starved of
    CPU the process is, takes at most ``READ_SHARE`` of the time left."""
    deadline = exit_deadline
    if deadline is None:
        return True
    units = len(sys.modules) + sum(len(stack) for _, stack in profile.samples)
    cpu_s = READ_COST_PER_UNIT_S * units
    if cpu_s <= ALWAYS_READ_CPU_S:
        return True
    return cpu_s * max(1.0, _starvation()) <= READ_SHARE * (deadline - time.monotonic())


def _read(profile: _Profile, frozen: Timeline) -> None:
    began = _now()
    ready = frozen.ready_ns or began
    samples = [s for s in profile.samples if s[0] <= ready]
    files = _module_files()
    entry = _entry_module()
    covered = _top_level_intervals(frozen, profile.main_tid, ready)
    used = _used_modules(profile, samples, files, covered, frozen)
    used |= _classes_and_instances(used | {"__main__"})
    attrs = frozen.root_attributes
    attrs[cv.ENTRY_MODULE] = entry
    attrs[cv.USED_MODULES] = sorted(used)
    attrs[cv.USED_SOURCE] = cv.USED_SOURCE_MONITORING if profile.first_calls else cv.USED_SOURCE_SAMPLING
    attrs[cv.PROFILE_INTERVAL_NS] = profile.interval_ns
    attrs[cv.IMPORT_CALLERS] = _callers(samples, covered, files)
    frozen.records.extend(_code_records(samples, covered, profile, frozen, ready, files))
    attrs[cv.PROFILE_BUILD_NS] = _now() - began


def _namespace(module: object) -> dict[str, Any]:
    """A module's ``__dict__`` without attribute lookup on it: a module's ``__getattr__`` (or a
    hostile object in ``sys.modules``) never runs."""
    try:
        found = vars(module)
    except TypeError:
        return {}
    return found if isinstance(found, dict) else {}


def _module_files() -> dict[str, str]:
    # Inlined ``_namespace``: this loop visits every module (20,000 in a large app), at exit too.
    files = {}
    for name, module in list(sys.modules.items()):
        try:
            namespace = vars(module)
            path = namespace.get("__file__") if type(namespace) is dict else None
        except TypeError:
            continue
        if isinstance(path, str):
            files[path] = name
    return files


def _entry_module() -> str:
    spec = _namespace(sys.modules.get("__main__")).get("__spec__")
    try:
        name = getattr(spec, "name", None)
    except Exception:  # a hostile spec
        name = None
    return name if isinstance(name, str) and name else "__main__"


def _top_level_intervals(frozen: Timeline, main_tid: int, ready: int) -> list[tuple[int, int, AnyRecord]]:
    """Imports and other records opened on the main thread outside any other: the time explained."""
    found: list[tuple[int, int, AnyRecord]] = []
    everything: list[AnyRecord] = [*frozen.imports, *frozen.records]
    for record in everything:
        if record.thread != main_tid or record.parent is not None:
            continue
        end = record.end or ready
        found.append((record.start, min(end, ready), record))
    found.sort(key=lambda item: item[0])
    return found


def _open_at(covered: list[tuple[int, int, AnyRecord]], at: int) -> AnyRecord | None:
    """The innermost import record open on the main thread at ``at`` (imports nest by time)."""
    index = bisect.bisect_right(covered, (at, float("inf"))) - 1
    if index < 0 or covered[index][1] < at:
        return None
    record = covered[index][2]
    # Descend: the innermost record containing ``at`` among the record's descendants.
    return _innermost(record, at)


_children_cache: dict[int, list[AnyRecord]] = {}


def _innermost(record: AnyRecord, at: int) -> AnyRecord:
    children = _children_cache.get(id(record), [])
    for child in children:
        if child.start <= at <= (child.end or at):
            return _innermost(child, at)
    return record


def _package_of(name: str) -> str:
    return name.partition(".")[0]


def _is_machinery(filename: str) -> bool:
    return any(marker in filename for marker in _MACHINERY)


def _used_modules(
    profile: _Profile,
    samples: list[tuple[int, tuple[tuple[Any, int], ...]]],
    files: dict[str, str],
    covered: list[tuple[int, int, AnyRecord]],
    frozen: Timeline,
) -> set[str]:
    used: set[str] = set()
    seen: set[tuple[int, str]] = set()
    # Per code object, once: the module its code is evidence for ("" for none). Samples repeat the
    # same few thousand code objects tens of thousands of times (20,000 imports: 66,000 frames).
    evidence: dict[int, str] = {}

    def module_of(code: Any) -> str:
        module = evidence.get(id(code))
        if module is None:
            module = ""
            if code.co_name != "<module>" and not _is_machinery(code.co_filename):
                found = files.get(code.co_filename)
                if found is not None and found != "__main__":
                    module = found
            evidence[id(code)] = module
        return module

    def note(code: Any, opening: str) -> None:
        """``opening``: the package of the import open when ``code`` ran ("" for none)."""
        key = (id(code), opening)
        if key in seen:
            return
        seen.add(key)
        module = module_of(code)
        # Code a package runs while it is itself being imported says nothing about the program.
        if module and not (opening and opening == _package_of(module)):
            used.add(module)

    def opening_package(record: Any) -> str:
        return _package_of(record.name) if isinstance(record, ImportRecord) else ""

    for code, record in profile.first_calls:
        note(code, opening_package(record))
    if not profile.first_calls and samples:
        _children_cache.clear()
        everything: list[AnyRecord] = [*frozen.imports, *frozen.records]
        for record in everything:
            parent = record.parent
            if parent is not None:
                _children_cache.setdefault(id(parent), []).append(record)
        ours: dict[int, bool] = {}
        for at, stack in samples:
            own = False
            for code, _ in stack:
                mine = ours.get(id(code))
                if mine is None:
                    mine = ours[id(code)] = "/otel_coldstart/" in code.co_filename
                if mine:
                    own = True
                    break
            if own:
                continue  # our own work (a memory snapshot): not the program's
            opening = opening_package(_open_at(covered, at))
            for code, _ in stack:
                if (id(code), opening) not in seen:
                    note(code, opening)
        _children_cache.clear()
    return used


_STDLIB = os.path.dirname(os.__file__)
_NOT_INSTANCES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType)


def _is_library_file(filename: str) -> bool:
    return "site-packages" in filename or "dist-packages" in filename or filename.startswith(_STDLIB)


def _callers(
    samples: list[tuple[int, tuple[tuple[Any, int], ...]]],
    covered: list[tuple[int, int, AnyRecord]],
    files: dict[str, str],
) -> list[str]:
    """For top-level imports a sample caught: the code that asked for them (outside the machinery)."""
    found: dict[int, str] = {}
    times = [s[0] for s in samples]
    for start, end, record in covered:
        if not isinstance(record, ImportRecord) or id(record) in found:
            continue
        index = bisect.bisect_left(times, start)
        if index >= len(samples) or samples[index][0] > end:
            continue
        caller = None
        outer = list(reversed(samples[index][1]))
        for position, (code, _) in enumerate(outer):
            if (
                _is_machinery(code.co_filename)
                and position
                and not _is_machinery(outer[position - 1][0].co_filename)
            ):
                caller = outer[position - 1][0]
                break
        if caller is None:
            continue
        module = files.get(caller.co_filename, "__main__" if caller.co_name == "<module>" else "?")
        where = "library" if _is_library_file(caller.co_filename) else "app"
        qualname = getattr(caller, "co_qualname", caller.co_name)
        found[id(record)] = f"{record.name}|{module}:{qualname}|{where}"
    return list(found.values())


def _classes_and_instances(names: set[str]) -> set[str]:
    """Modules of the bases of classes the used modules define, and of the instances they hold at
    ready (``app = FastAPI()``): a subclass needs its base's module however little of it runs."""
    found: set[str] = set()
    for name in names:
        for value in list(_namespace(sys.modules.get(name)).values()):
            try:
                if isinstance(value, type):
                    if value.__dict__.get("__module__") == name:
                        found.update(str(base.__dict__.get("__module__", "")) for base in value.__mro__[1:])
                elif not isinstance(value, _NOT_INSTANCES):
                    found.add(str(type(value).__dict__.get("__module__", "")))
            except Exception:  # a class whose metaclass misbehaves: no evidence, no harm
                continue
    found.discard("builtins")
    found.discard("")
    return found


def _call_key(stack: tuple[tuple[Any, int], ...]) -> tuple[str, str, int]:
    """(span name, file, line) of the program's top-level call in an outermost-first reading."""
    if any("/otel_coldstart/" in c.co_filename for c, _ in stack):
        return "otel-coldstart (own work)", "", 0
    frames = [(c, line) for c, line in reversed(stack) if not _is_machinery(c.co_filename)]
    if not frames:
        return "interpreter (no frame of the program)", "", 0
    entry_code, entry_offset = frames[0]
    entry_line = _line(entry_code, entry_offset)
    if len(frames) == 1:
        return f"code {entry_code.co_name} line {entry_line}", entry_code.co_filename, entry_line
    callee = frames[1][0]
    qualname = getattr(callee, "co_qualname", callee.co_name)
    return f"call {qualname}", entry_code.co_filename, entry_line


def _line(code: Any, offset: int) -> int:
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line or 0
    return code.co_firstlineno


def _hot(stacks: list[tuple[tuple[Any, int], ...]], files: dict[str, str]) -> list[str]:
    """The innermost functions seen most often: where a long call spent its time."""
    counts: dict[str, int] = {}
    for stack in stacks:
        for code, _ in stack:
            if _is_machinery(code.co_filename):
                continue
            module = files.get(code.co_filename, code.co_filename)
            key = f"{module}:{getattr(code, 'co_qualname', code.co_name)}"
            counts[key] = counts.get(key, 0) + 1
            break
    total = len(stacks) or 1
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)[:3]
    return [f"{name} {count / total:.0%}" for name, count in ranked]


def _code_records(
    samples: list[tuple[int, tuple[tuple[Any, int], ...]]],
    covered: list[tuple[int, int, AnyRecord]],
    profile: _Profile,
    frozen: Timeline,
    ready: int,
    files: dict[str, str],
) -> list[Record]:
    """Records for the main phase's time outside every top-level record, from the samples in it."""
    main_start = frozen.marks.get("launcher_done", frozen.hook_installed_ns)
    gaps = []
    cursor = main_start
    for start, end, _ in covered:
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < ready:
        gaps.append((cursor, ready))
    records: list[Record] = []
    times = [s[0] for s in samples]
    for low, high in gaps:
        first, last = bisect.bisect_left(times, low), bisect.bisect_right(times, high)
        inside = samples[first:last]
        if not inside:
            continue
        runs: list[tuple[tuple[str, str, int], list[tuple[int, tuple[tuple[Any, int], ...]]]]] = []
        for sample in inside:
            key = _call_key(sample[1])
            if runs and runs[-1][0] == key:
                runs[-1][1].append(sample)
            else:
                runs.append((key, [sample]))
        for index, (key, members) in enumerate(runs):
            # Runs split at the midpoint between their samples; the first and last reach the gap's ends.
            start = low if index == 0 else (runs[index - 1][1][-1][0] + members[0][0]) // 2
            end = high if index == len(runs) - 1 else (members[-1][0] + runs[index + 1][1][0][0]) // 2
            name, path, line = key
            attrs: dict[str, Any] = {
                cv.CODE_SAMPLES: len(members),
                cv.CODE_HOT: _hot([m[1] for m in members], files),
            }
            if path:
                attrs[cv.CODE_FILE_PATH] = path
                attrs[cv.CODE_LINE_NUMBER] = line
            record = Record(cv.KIND_CODE, name, start, None, profile.main_tid, attrs)
            record.end = end
            records.append(record)
    return records
