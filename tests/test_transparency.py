"""Odd but real programs, run plain and under the launcher: the application must not notice us.

Each program runs twice, ``python app.py`` and ``opentelemetry-instrument python app.py``, and the
two runs must agree exactly on stdout, stderr and exit status, while the traced one still writes
its cold start. The programs are hostile on purpose: modules that replace themselves with proxies
whose every attribute raises, exceptions that cannot be printed, plugins unloaded before ready,
``SystemExit`` from threads, ``os._exit`` from a thread.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import clean_env, run_instrumented, write

from otel_coldstart import conventions as cv
from otel_coldstart.validate.analysis import is_import

#: Modules the programs import, before and after ready (each name twice: ``_a`` before, ``_b`` after).
HOSTILE_MODULES = {
    # A config proxy: a module subclass whose every attribute, dunders included, raises KeyError.
    "config_proxy": (
        "import sys, types\n"
        "class Proxy(types.ModuleType):\n"
        "    def __getattribute__(self, name):\n"
        "        raise KeyError(name)\n"
        "sys.modules[__name__] = Proxy(__name__)\n"
    ),
    # Not a module at all: an object whose missing attributes raise KeyError.
    "settings_proxy": (
        "import sys\n"
        "class Settings:\n"
        "    def __getattr__(self, name):\n"
        "        raise KeyError(name)\n"
        "    def __repr__(self):\n"
        "        raise RuntimeError('no repr either')\n"
        "sys.modules[__name__] = Settings()\n"
    ),
    # Fails at import with an exception that can be neither printed nor repr'd.
    "unprintable": (
        "class Unprintable(Exception):\n"
        "    def __str__(self):\n"
        "        raise RuntimeError('__str__ is broken')\n"
        "    def __repr__(self):\n"
        "        raise RuntimeError('__repr__ is broken')\n"
        "raise Unprintable('at import')\n"
    ),
    # Executed only when first touched: we must not touch it.
    "lazy_target": "print('lazy_target executed')\nVALUE = 7\n",
}

APP = """
import importlib.util, sys, time, traceback

def lazy(name):
    spec = importlib.util.find_spec(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module

def hostile(suffix):
    import importlib
    for name in ("config_proxy", "settings_proxy"):
        module = importlib.import_module(name + suffix)
        print(name, type(module).__name__)
        try:
            module.anything
        except KeyError as exc:
            print("  attribute ->", repr(exc))
    try:
        importlib.import_module("unprintable" + suffix)
    except Exception as exc:
        print("unprintable ->", type(exc).__name__)
        print("".join(traceback.format_exception_only(type(exc), exc)).strip())
    module = lazy("lazy_target" + suffix)
    print("lazy imported")
    print("lazy value", module.VALUE)

hostile("_a")
try:
    import otel_coldstart.record.imports as ours
    installed = ours.is_installed()
except ImportError:
    installed = False
if installed:
    import otel_coldstart
    otel_coldstart.mark_ready()
    for _ in range(400):  # after ready, imports are live spans once the SDK is up
        if ours.live_handler is not None:
            break
        time.sleep(0.05)
hostile("_b")
import unprintable_c  # uncaught: the same traceback and status as without us
"""


def _write_modules(tmp_path: Path) -> None:
    for name, source in HOSTILE_MODULES.items():
        for suffix in ("_a", "_b", "_c"):
            write(tmp_path / f"{name}{suffix}.py", source)


def run_both(
    script: Path, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess, Path]:
    plain_env = {**clean_env(), **(env or {})}
    # The plain run goes on beside the traced one: neither writes beside the script, and the
    # programs that sleep (the ready-timeout ones) then cost their sleep once, not twice.
    command = [sys.executable, str(script), *args]
    with subprocess.Popen(
        command, env=plain_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            trace_file = tmp_path / "trace.jsonl"
            traced = run_instrumented(script, trace_file, *args, env=env, cwd=tmp_path).completed
            out, err = process.communicate(timeout=60)
        except BaseException:
            process.kill()
            raise
    plain = subprocess.CompletedProcess(command, process.returncode, out, err)
    return plain, traced, trace_file


#: The stock launcher's own warning when another configurator (the stock distro's, in the dev
#: extra) is installed beside ours: not ours to silence, and absent where only ours is installed.
STOCK_LAUNCHER_NOTE = (
    "Configuration of configurator not loaded because otel_coldstart is set by OTEL_PYTHON_CONFIGURATOR\n"
)


def assert_same(plain: subprocess.CompletedProcess, traced: subprocess.CompletedProcess) -> None:
    assert traced.stdout == plain.stdout
    assert traced.stderr.replace(STOCK_LAUNCHER_NOTE, "", 1) == plain.stderr
    assert traced.returncode == plain.returncode


def test_hostile_modules_and_unprintable_exceptions_before_and_after_ready(tmp_path: Path):
    _write_modules(tmp_path)
    script = write(tmp_path / "app.py", APP)
    plain, traced, trace_file = run_both(script, tmp_path)
    assert plain.returncode == 1 and "Unprintable" in plain.stderr, plain.stderr
    assert "lazy imported\nlazy_target executed\nlazy value 7" in plain.stdout
    assert_same(plain, traced)

    from otel_coldstart.validate.readers import read_file

    (trace,) = read_file(str(trace_file))[1]
    assert trace.root.attributes[cv.READY_TRIGGER] == cv.TRIGGER_EXPLICIT
    spans = {s.attributes[cv.MODULE_NAME]: s for s in trace.spans if is_import(s)}
    # A best-effort record of each: the proxies (no spec of their own) of unknown kind, the failure
    # by its type.
    for name in ("config_proxy_a", "settings_proxy_a"):
        assert spans[name].attributes[cv.MODULE_KIND] == cv.MODULE_KIND_UNKNOWN
        assert spans[name].attributes[cv.IMPORT_OUTCOME] == cv.OUTCOME_OK
    assert spans["unprintable_a"].status_code == 2
    failure = next(e for e in spans["unprintable_a"].events if e.name == "exception")
    assert failure.attributes["exception.type"] == "unprintable_a.Unprintable"
    assert failure.attributes["exception.message"] == "<unprintable unprintable_a.Unprintable>"
    assert "lazy_target_a" not in spans  # find_spec + LazyLoader: no import ran before ready
    assert not any(name.endswith("_b") for name in spans)  # after ready: live spans, not the cold start


PLUGIN_APP = """
import gc, sys, weakref

def unload(name):
    module = __import__(name)
    plugin_ref = weakref.ref(module)
    weakref.finalize(module.STATE, print, name, "state freed")
    del sys.modules[name], module
    gc.collect()
    print(name, "module freed:", plugin_ref() is None)

unload("plugin_one")
import json_plugin_user  # imports after the unload still nest and are recorded
unload("plugin_two")
print("done")
"""


def test_a_plugin_unloaded_before_ready_is_freed(tmp_path: Path):
    for name in ("plugin_one", "plugin_two"):
        write(tmp_path / f"{name}.py", "import decimal\nclass State:\n    pass\nSTATE = State()\n")
    write(tmp_path / "json_plugin_user.py", "import json\n")
    script = write(tmp_path / "app.py", PLUGIN_APP)
    plain, traced, trace_file = run_both(script, tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "plugin_one state freed\nplugin_one module freed: True" in plain.stdout
    assert "plugin_two module freed: True" in plain.stdout
    assert_same(plain, traced)

    from otel_coldstart.validate.readers import read_file

    (trace,) = read_file(str(trace_file))[1]
    spans = {s.attributes[cv.MODULE_NAME]: s for s in trace.spans if is_import(s)}
    # The freed module's span still knows what it was: its spec was taken when its import ended.
    assert spans["plugin_one"].attributes[cv.CODE_FILE_PATH].endswith("plugin_one.py")
    assert spans["plugin_one"].attributes[cv.MODULE_KIND] == cv.MODULE_KIND_SOURCE


SPEC_APP = """
import gc, sys, time, weakref
import otel_coldstart
import plugin_one

spec_ref = weakref.ref(plugin_one.__spec__)
loader_ref = weakref.ref(plugin_one.__loader__)
otel_coldstart.mark_ready()
del sys.modules["plugin_one"], plugin_one
for _ in range(200):  # the cold start's first durable copy is written right after ready
    gc.collect()
    if spec_ref() is None and loader_ref() is None:
        break
    time.sleep(0.05)
print("spec and loader freed:", spec_ref() is None and loader_ref() is None)
"""


def test_a_module_unloaded_after_ready_leaves_nothing_of_it_behind(tmp_path: Path):
    # The records hold each module's spec (and through it the loader) until the raw copy has
    # what the spans need; then they are let go, as they would be without us.
    write(tmp_path / "plugin_one.py", "import decimal\n")
    script = write(tmp_path / "app.py", SPEC_APP)
    # The app ends right after the copy is written: time enough for the build that follows it on
    # a busy machine, or the exit's cut-off says so on stderr.
    plain, traced, trace_file = run_both(script, tmp_path, env={"OTEL_PYTHON_COLDSTART_EXIT_TIMEOUT": "10"})
    assert plain.stdout == "spec and loader freed: True\n", plain.stderr
    assert_same(plain, traced)
    from otel_coldstart.validate.readers import read_file

    (trace,) = read_file(str(trace_file))[1]
    spans = {s.attributes[cv.MODULE_NAME]: s for s in trace.spans if is_import(s)}
    assert spans["plugin_one"].attributes[cv.CODE_FILE_PATH].endswith("plugin_one.py")


THREADS_APP = """
import os, sys, threading, time

mode = sys.argv[1]

def exits_quietly():
    sys.exit(5)  # SystemExit in a thread ends only the thread, silently

def exits_with_message():
    raise SystemExit("bye from a thread")

def fails():
    raise ValueError("boom in a thread")

for target in (exits_quietly, exits_with_message, fails):
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
print("main continues in", threading.current_thread().name, threading.active_count())

if mode == "status":
    sys.exit(3)
if mode == "message":
    sys.exit("fatal: configuration missing")
if mode == "big":
    sys.exit(300)
if mode == "os_exit_from_thread":
    threading.Thread(target=lambda: (sys.stdout.flush(), os._exit(7))).start()
    time.sleep(30)
if mode == "daemon_exits":
    def late():
        time.sleep(0.2)
        sys.exit(9)
    threading.Thread(target=late, daemon=True).start()
    time.sleep(0.5)
"""


@pytest.mark.parametrize("mode", ["status", "message", "big", "os_exit_from_thread", "daemon_exits"])
def test_exit_status_and_thread_exits_as_without_us(tmp_path: Path, mode: str):
    script = write(tmp_path / "app.py", THREADS_APP)
    # A ready timeout arms a timer thread: it must not shift the app's own thread numbering.
    env = {"OTEL_PYTHON_COLDSTART_READY_TIMEOUT": "60"}
    plain, traced, trace_file = run_both(script, tmp_path, mode, env=env)
    assert "Exception in thread Thread-3 (fails)" in plain.stderr
    assert_same(plain, traced)
    from otel_coldstart.validate.readers import read_file

    (trace,) = read_file(str(trace_file))[1]
    assert trace.root.attributes[cv.READY_TRIGGER] == cv.TRIGGER_EXIT
