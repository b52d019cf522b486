"""The launch paths: the ``otel_coldstart.pth`` hook, ``otel-coldstart run``, activation by
environment variable, the launcher's own cost as spans, and contrib instrumentors loaded on the
first import of their library. Real processes, real site-packages, a real wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from helpers import auto_env, clean_env, run_instrumented, write

from otel_coldstart.cli.demo import launcher_command, traced_env
from otel_coldstart.validate.analysis import is_import
from otel_coldstart.validate.readers import read_file

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("otel-coldstart"))
LAUNCHER_STEPS = {
    "coldstart.launcher.distro",
    "coldstart.launcher.configurator",
    "coldstart.launcher.instrumentors",
}

APP = """
import json, sys
print("app done", sys.argv[1:])
"""

# Reports which libraries ended up imported: the instrumentor must not bring requests in.
REPORT = """
import sys
print("loaded:", " ".join(sorted(m for m in ("requests", "opentelemetry.instrumentation.requests")
                                 if m in sys.modules)))
"""

USES_REQUESTS = """
import requests
from opentelemetry.instrumentation.requests import RequestsInstrumentor
print("instrumented:", RequestsInstrumentor().is_instrumented_by_opentelemetry,
      hasattr(requests.Session.send, "__wrapped__"))
"""


def run(command: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def only_trace(path: Path):
    traces = read_file(str(path))[1]
    assert len(traces) == 1, f"expected one cold start, got {len(traces)}"
    return traces[0]


def phase(trace, name: str):
    return next(c for c in trace.root.children if c.name == name)


def named(trace, name: str) -> list:
    return [s for s in trace.spans if s.name == name]


def test_pth_is_installed_in_site_packages_and_is_one_guarded_line():
    installed = Path(sysconfig.get_paths()["purelib"]) / "otel_coldstart.pth"
    assert installed.is_file(), "pip install -e . must put otel_coldstart.pth into site-packages"
    assert installed.read_text() == (ROOT / "otel_coldstart.pth").read_text()
    lines = [line for line in installed.read_text().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("import ")


def test_off_by_default_the_hook_imports_nothing(tmp_path: Path):
    code = "import sys; print(sorted(m for m in sys.modules if m.startswith(('otel_coldstart', 'wrapt'))))"
    done = run([sys.executable, "-c", code], clean_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert done.stderr == ""


def test_environment_activation_traces_without_a_wrapper(tmp_path: Path):
    script = write(tmp_path / "app.py", APP)
    trace_file = tmp_path / "trace.jsonl"
    done = run([sys.executable, str(script), "x"], auto_env(trace_file, OTEL_PYTHON_COLDSTART_AUTO="1"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "app done ['x']\n"
    trace = only_trace(trace_file)
    root = trace.root
    assert root.attributes["coldstart.origin"] == "auto"
    assert root.attributes["coldstart.ready.trigger"] == "exit"
    assert root.resource["service.name"] == "coldstart-test"
    assert root.resource["telemetry.distro.name"] == "otel-coldstart"
    assert {"coldstart.boot", "coldstart.launcher", "coldstart.main"} <= {c.name for c in root.children}
    assert not named(trace, "coldstart.wrapper")  # nothing ran before this interpreter
    assert named(trace, "coldstart.launcher.activate")
    main = phase(trace, "coldstart.main")
    assert "json" in {s.attributes["coldstart.module.name"] for s in main.children if is_import(s)}
    # No launcher ran: the stock auto-instrumentation package was never imported.
    modules = {s.attributes.get("coldstart.module.name") for s in trace.spans}
    assert "opentelemetry.instrumentation.auto_instrumentation" not in modules


@pytest.mark.parametrize("value", ["0", "false", ""])
def test_environment_activation_switched_off(tmp_path: Path, value: str):
    script = write(tmp_path / "app.py", APP)
    trace_file = tmp_path / "trace.jsonl"
    done = run([sys.executable, str(script)], auto_env(trace_file, OTEL_PYTHON_COLDSTART_AUTO=value))
    assert done.returncode == 0, done.stderr
    assert not trace_file.exists()


def test_run_shows_its_wrapper_and_keeps_the_exit_status(tmp_path: Path):
    script = write(tmp_path / "app.py", "import json, sys\nprint('out'); sys.exit(7)\n")
    trace_file = tmp_path / "trace.jsonl"
    done = run([CLI, "run", "--", sys.executable, str(script)], auto_env(trace_file))
    assert done.returncode == 7, done.stderr
    assert done.stdout == "out\n"
    trace = only_trace(trace_file)
    (wrapper,) = named(trace, "coldstart.wrapper")
    boot = phase(trace, "coldstart.boot")
    assert wrapper.parent_id == boot.span_id
    assert wrapper.attributes["coldstart.launcher.wrapper"] == "otel-coldstart-run"
    # The wrapper is this very process before its exec: it starts with the process (the
    # process's creation time is read twice, microseconds apart).
    assert abs(wrapper.start_ns - trace.root.start_ns) < 1_000_000
    assert wrapper.end_ns <= boot.end_ns
    assert wrapper.duration_ns > 0


def test_run_without_a_command_or_with_a_missing_one_says_so_in_one_line(tmp_path: Path):
    env = auto_env(tmp_path / "trace.jsonl")
    empty = run([CLI, "run"], env)
    assert empty.returncode == 2
    assert empty.stderr.startswith("otel-coldstart: error: run needs a COMMAND")
    missing = run([CLI, "run", "--", "no-such-program-anywhere"], env)
    assert missing.returncode == 127
    assert missing.stderr.strip().splitlines() == [
        "otel-coldstart: error: cannot run no-such-program-anywhere: No such file or directory"
    ]
    helped = run([CLI, "run", "--help"], env)
    assert helped.returncode == 0 and "127" in helped.stdout
    not_executable = write(tmp_path / "data.txt", "not a program")
    denied = run([CLI, "run", str(not_executable)], env)
    assert denied.returncode == 126
    assert "Traceback" not in denied.stderr


CHILD = """
import decimal, sys
print("child", "opentelemetry.instrumentation.auto_instrumentation" in sys.modules)
"""


@pytest.mark.parametrize("path", ["run", "opentelemetry-instrument"])
def test_a_child_process_gets_its_own_cold_start_without_the_parents_wrapper(tmp_path: Path, path: str):
    child = write(tmp_path / "child.py", CHILD)
    parent = write(
        tmp_path / "parent.py",
        f"import subprocess, sys\nsubprocess.run([sys.executable, {str(child)!r}], check=True)\n",
    )
    trace_file = tmp_path / "trace.jsonl"
    done = _launched(path, parent, trace_file)
    assert done.returncode == 0, done.stderr
    # Under opentelemetry-instrument too, the child's launch is our hook's, not the launcher's.
    assert done.stdout == "child False\n"
    traces = read_file(str(trace_file))[1]
    assert len(traces) == 2
    wrappers = [len(named(t, "coldstart.wrapper")) for t in traces]
    assert sorted(wrappers) == [0, 1]  # only the process the wrapper exec'd shows it


def test_a_stamp_that_is_not_ours_is_ignored(tmp_path: Path):
    script = write(tmp_path / "app.py", APP)
    trace_file = tmp_path / "trace.jsonl"
    for stamp in ("garbage", "otel-coldstart-run,1,2", f"opentelemetry-instrument,{os.getpid()},x"):
        trace_file.unlink(missing_ok=True)
        env = auto_env(trace_file, OTEL_PYTHON_COLDSTART_AUTO="1", OTEL_PYTHON_COLDSTART_LAUNCH=stamp)
        done = run([sys.executable, str(script)], env)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert not named(only_trace(trace_file), "coldstart.wrapper")


# What the app sees of its launch: the variables the wrapper sets, its command line, and which
# of the launcher's modules are loaded before its first line.
SEEN = """
import os, sys
print(os.environ.get("PYTHONPATH"), os.environ.get("OTEL_PYTHON_DISTRO"), sys.argv[1:])
print(sorted(m for m in sys.modules if m.startswith(("opentelemetry.instrumentation", "packaging"))))
print(sys.modules["sitecustomize"].__file__)
"""


def test_under_opentelemetry_instrument_our_hook_does_the_launchers_work_without_the_launcher(tmp_path: Path):
    script = write(tmp_path / "app.py", SEEN)
    # A PYTHONPATH of the user's, the working directory already on it.
    python_path = {"PYTHONPATH": os.pathsep.join(["/opt/nowhere", str(tmp_path)])}
    fast = run_instrumented(script, tmp_path / "trace.jsonl", "a", "--b", env=python_path, cwd=tmp_path)
    assert fast.completed.returncode == 0, fast.completed.stderr
    # "--" makes the stock wrapper parse the command line itself: the same exec, the same variables.
    command = launcher_command(script, "a", "--b")
    command.insert(1, "--")
    env = {**traced_env(str(tmp_path / "stock.jsonl")), **python_path, "OTEL_PYTHON_DISTRO": None}
    stock = run(command, {k: v for k, v in env.items() if v is not None}, cwd=tmp_path)
    assert stock.returncode == 0, stock.stderr
    fast_env, fast_modules, fast_site = fast.completed.stdout.splitlines()
    stock_env, stock_modules, stock_site = stock.stdout.splitlines()
    assert fast_env == stock_env and fast_site == stock_site
    assert fast_env.endswith(" otel_coldstart ['a', '--b']")
    # Neither the wrapper's nor the launcher's sitecustomize import ran in the app's process.
    assert fast_modules == stock_modules == "[]"
    trace = fast.trace()
    (wrapper,) = named(trace, "coldstart.wrapper")
    assert wrapper.attributes["coldstart.launcher.wrapper"] == "opentelemetry-instrument"
    assert abs(wrapper.start_ns - trace.root.start_ns) < 1_000_000
    assert trace.root.attributes["coldstart.origin"] == "launcher"
    launcher = phase(trace, "coldstart.launcher")
    names = {s.name for s in launcher.walk()}
    # Our activation, then the instrumentors when site imports (our stand-in for) sitecustomize.
    assert {"coldstart.launcher.activate", "coldstart.launcher.instrumentors"} <= names
    assert not names & {"coldstart.launcher.distro", "coldstart.launcher.configurator"}
    modules = {s.attributes.get("coldstart.module.name") for s in trace.spans if is_import(s)}
    assert "opentelemetry.instrumentation.auto_instrumentation" not in modules


def test_with_the_stock_distro_chosen_the_launchers_own_work_is_spans(tmp_path: Path):
    script = write(tmp_path / "app.py", APP)
    env = {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator"}
    completed = run_instrumented(script, tmp_path / "trace.jsonl", env=env)
    assert completed.completed.returncode == 0, completed.completed.stderr
    trace = completed.trace()
    (wrapper,) = named(trace, "coldstart.wrapper")
    assert wrapper.attributes["coldstart.launcher.wrapper"] == "opentelemetry-instrument"
    assert abs(wrapper.start_ns - trace.root.start_ns) < 1_000_000
    launcher = phase(trace, "coldstart.launcher")
    inside = list(launcher.walk())
    names = {s.name for s in inside}
    assert names >= LAUNCHER_STEPS
    groups = {s.attributes.get("coldstart.launcher.group") for s in inside}
    assert {"opentelemetry_distro", "opentelemetry_instrumentor"} <= groups
    modules = {s.attributes.get("coldstart.module.name") for s in inside if is_import(s)}
    assert {"sitecustomize", "opentelemetry.instrumentation.auto_instrumentation"} <= modules
    # The launcher's spans nest inside their phases (sitecustomize ends inside coldstart.launcher).
    assert not [w for w in trace.warnings if "outside their parent" in w], trace.warnings
    # What no span explains in boot is the interpreter starting, once per exec.
    boot = phase(trace, "coldstart.boot")
    assert 0 < boot.duration_ns - wrapper.duration_ns < boot.duration_ns


def test_stock_distro_with_our_instrumentors_off_is_not_recorded_at_all(tmp_path: Path):
    script = write(tmp_path / "app.py", REPORT)
    trace_file = tmp_path / "trace.jsonl"
    env = {
        "OTEL_PYTHON_DISTRO": "distro",
        "OTEL_PYTHON_CONFIGURATOR": "configurator",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "coldstart_imports,coldstart_services,requests",
    }
    completed = run_instrumented(script, trace_file, env=env).completed
    assert completed.returncode == 0, completed.stderr
    assert not trace_file.exists()


def _launched(path: str, script: Path, trace_file: Path) -> subprocess.CompletedProcess:
    """``script`` traced through ``otel-coldstart run`` or through ``opentelemetry-instrument``."""
    if path == "run":
        return run([CLI, "run", sys.executable, str(script)], auto_env(trace_file))
    return run_instrumented(script, trace_file).completed


@pytest.mark.parametrize("path", ["run", "opentelemetry-instrument"])
def test_an_unused_contrib_instrumentor_costs_nothing(tmp_path: Path, path: str):
    pytest.importorskip("opentelemetry.instrumentation.requests")
    script = write(tmp_path / "app.py", REPORT)
    trace_file = tmp_path / "trace.jsonl"
    completed = _launched(path, script, trace_file)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "loaded: \n"
    assert not named(only_trace(trace_file), "instrument requests")


@pytest.mark.parametrize("path", ["run", "opentelemetry-instrument"])
def test_a_contrib_instrumentor_instruments_on_the_first_import_of_its_library(tmp_path: Path, path: str):
    pytest.importorskip("opentelemetry.instrumentation.requests")
    script = write(tmp_path / "app.py", USES_REQUESTS)
    trace_file = tmp_path / "trace.jsonl"
    completed = _launched(path, script, trace_file)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "instrumented: True True\n"
    trace = only_trace(trace_file)
    (instrument,) = named(trace, "instrument requests")
    (imported,) = [s for s in trace.spans if s.attributes.get("coldstart.module.name") == "requests"]
    # Never earlier than the app's own import of the library.
    assert instrument.start_ns >= imported.start_ns


def test_disabled_contrib_instrumentor_is_not_loaded_on_the_run_path(tmp_path: Path):
    pytest.importorskip("opentelemetry.instrumentation.requests")
    script = write(
        tmp_path / "app.py",
        "import requests, sys\nprint('opentelemetry.instrumentation.requests' in sys.modules)\n",
    )
    trace_file = tmp_path / "trace.jsonl"
    env = auto_env(trace_file, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="requests")
    completed = run([CLI, "run", sys.executable, str(script)], env)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "False\n"


def test_our_own_command_line_is_never_traced(tmp_path: Path):
    trace_file = tmp_path / "trace.jsonl"
    done = run([CLI, "--version"], auto_env(trace_file, OTEL_PYTHON_COLDSTART_AUTO="1"))
    assert done.returncode == 0, done.stderr
    assert not trace_file.exists()


def test_the_wheel_carries_the_pth_and_it_works_installed(tmp_path: Path):
    """Build the wheel with hatchling, install it (unpacked, as pip does) into a fresh virtualenv
    whose dependencies come from this one, and trace an app there by environment activation."""
    dist = tmp_path / "dist"
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)], clean_env()
    )
    if built.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {built.stderr.strip()[-200:]}")
    (wheel,) = dist.glob("otel_coldstart-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "otel_coldstart.pth" in names
        assert archive.read("otel_coldstart.pth") == (ROOT / "otel_coldstart.pth").read_bytes()
        venv = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        python = venv / "bin" / "python"
        purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], {})
        site = Path(purelib.stdout.strip())
        archive.extractall(site)
    # The dependencies (not otel_coldstart: this venv's copy is the wheel's) from the dev venv.
    deps = Path(sysconfig.get_paths()["purelib"])
    (site / "zz_dev_dependencies.pth").write_text(f"{deps}\n")
    script = write(tmp_path / "app.py", "import otel_coldstart, json\nprint(otel_coldstart.__file__)\n")
    trace_file = tmp_path / "trace.jsonl"
    done = run([str(python), str(script)], auto_env(trace_file, OTEL_PYTHON_COLDSTART_AUTO="1"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(site))  # the installed wheel, not the source tree
    trace = only_trace(trace_file)
    assert trace.root.attributes["coldstart.origin"] == "auto"
    assert named(trace, "coldstart.launcher.activate")

    # Under opentelemetry-instrument, the contrib instrumentations sit on a path that a .pth file
    # sorting after ours adds: the instrumentors are found as the launcher finds them, once every
    # .pth file has run (when site imports sitecustomize), not when our line runs.
    pytest.importorskip("opentelemetry.instrumentation.requests")
    launcher = venv / "bin" / "opentelemetry-instrument"
    launcher.write_text(
        f"#!{python}\nfrom opentelemetry.instrumentation.auto_instrumentation import run\nrun()\n"
    )
    launcher.chmod(0o755)
    script = write(tmp_path / "uses_requests.py", USES_REQUESTS)
    trace_file = tmp_path / "instrumented.jsonl"
    env = {**auto_env(trace_file), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    done = run([str(launcher), "python", str(script)], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "instrumented: True True\n"
    assert named(only_trace(trace_file), "instrument requests")


def test_boot_advice_names_the_launchers_cost_and_the_launch_that_skips_it(tmp_path: Path):
    from otel_coldstart.validate import analysis, recommend

    script = write(tmp_path / "app.py", APP)
    completed = run_instrumented(script, tmp_path / "trace.jsonl")
    assert completed.completed.returncode == 0, completed.completed.stderr
    trace = completed.trace()
    summary = analysis.summarize(trace)
    (advice,) = [a for a in recommend.recommend(summary) if a.kind == "boot"]
    (wrapper,) = named(trace, "coldstart.wrapper")
    (activate,) = named(trace, "coldstart.launcher.activate")
    expected = wrapper.duration_ns + phase(trace, "coldstart.launcher").duration_ns - activate.duration_ns
    assert advice.subject == "opentelemetry-instrument"
    assert advice.saving_ns == expected
    assert f"saves up to {expected / 1e6:.0f} ms" in advice.message
    assert "OTEL_PYTHON_COLDSTART_AUTO=1" in advice.message and "otel-coldstart run" in advice.message

    # On the low-tax path there is no launcher cost to blame.
    trace_file = tmp_path / "auto.jsonl"
    done = run([CLI, "run", sys.executable, str(script)], auto_env(trace_file))
    assert done.returncode == 0, done.stderr
    low_tax = recommend.recommend(analysis.summarize(only_trace(trace_file)))
    assert not [a for a in low_tax if a.subject == "opentelemetry-instrument"]


def test_the_zero_tax_launch_keeps_heavy_modules_off_the_start_up_path(tmp_path: Path):
    # Measured in the app's first line: what arming the recorder imported before the app ran.
    heavy = ("wrapt", "asyncio", "importlib.metadata", "opentelemetry.sdk", "psutil", "argparse")
    code = f"import sys; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    trace_file = tmp_path / "trace.jsonl"
    done = run([CLI, "run", sys.executable, "-c", code], auto_env(trace_file))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert only_trace(trace_file).root.attributes["coldstart.origin"] == "auto"


UNTOUCHED = """
import sys
print([m for m in ("threading", "contextlib", "functools", "collections", "signal", "enum", "re", "json")
       if m in sys.modules])
"""


@pytest.mark.parametrize("path", ["run", "env"])
def test_the_app_finds_no_stdlib_module_it_did_not_import(tmp_path: Path, path: str):
    """The recorder starts without threading, contextlib, signal (enum), json (re): a program that
    never imports them finds them missing at its first line, as without us, and its exit is
    recorded all the same."""
    script = write(tmp_path / "app.py", UNTOUCHED)
    plain = run([sys.executable, str(script)], clean_env())
    assert plain.returncode == 0, plain.stderr
    trace_file = tmp_path / "trace.jsonl"
    command = [CLI, "run", sys.executable, str(script)] if path == "run" else [sys.executable, str(script)]
    extra = {} if path == "run" else {"OTEL_PYTHON_COLDSTART_AUTO": "1"}
    done = run(command, auto_env(trace_file, **extra))
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == (plain.stdout, plain.stderr)
    assert only_trace(trace_file).root.attributes["coldstart.ready.trigger"] == "exit"


MAIN_THREAD_AFTER_READY = """
import sys, time
import otel_coldstart
{ready}
time.sleep(0.5)  # the worker builds and writes the trace meanwhile
import threading
print(threading.current_thread() is threading.main_thread(), threading.current_thread().name)
t = threading.Thread(target=lambda: None)
t.start()
t.join()
"""


@pytest.mark.parametrize(
    ("ready", "extra"),
    [
        ("otel_coldstart.mark_ready()", {}),
        ("", {"OTEL_PYTHON_COLDSTART_READY_TIMEOUT": "0.05"}),
    ],
)
def test_threading_imported_after_our_worker_still_knows_the_apps_main_thread(
    tmp_path: Path, ready: str, extra: dict[str, str]
):
    """threading (before 3.12) takes the thread that first imports it for the main thread: our
    worker, whose SDK set-up imports it, must never be that thread, or the app's main thread is a
    dummy and the interpreter's shutdown fails on our thread's lock."""
    script = write(tmp_path / "app.py", MAIN_THREAD_AFTER_READY.format(ready=ready))
    trace_file = tmp_path / "trace.jsonl"
    done = run([sys.executable, str(script)], auto_env(trace_file, OTEL_PYTHON_COLDSTART_AUTO="1", **extra))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "True MainThread\n"
    assert done.stderr == ""
    assert only_trace(trace_file)


RAW_THREAD_IMPORTS_FIRST = """
import _thread, sys, time
done = _thread.allocate_lock()
done.acquire()
def work():
    import raw_only  # recorded on this thread, which threading has never seen
    done.release()
_thread.start_new_thread(work, ())
done.acquire()
time.sleep(0.05)
print("threading" in sys.modules)
import threading
print(threading.current_thread() is threading.main_thread(), threading.current_thread().name)
"""


def test_a_raw_threads_import_does_not_make_it_threadings_main_thread(tmp_path: Path):
    script = write(tmp_path / "app.py", RAW_THREAD_IMPORTS_FIRST)
    write(tmp_path / "raw_only.py", "")
    trace_file = tmp_path / "trace.jsonl"
    env = auto_env(trace_file, OTEL_PYTHON_COLDSTART_AUTO="1")
    done = run([sys.executable, str(script)], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plain = run([sys.executable, str(script)], clean_env(), cwd=tmp_path)
    # "False" first where this environment's site imports no threading of its own.
    assert (done.stdout, done.stderr) == (plain.stdout, plain.stderr)
    assert done.stdout.endswith("\nTrue MainThread\n")
    spans = only_trace(trace_file).spans
    assert [s for s in spans if s.attributes.get("coldstart.module.name") == "raw_only"]
