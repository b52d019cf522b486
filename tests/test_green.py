"""gevent- and eventlet-patched processes: the ready timeout, threads and exit, plain vs traced.

The launcher arms us before the application monkey-patches: our timer and worker must stay real
threads (a patched ``threading`` would start greenlets in a hub nobody runs, and the cold start
was lost), and nothing of ours may show in ``threading.enumerate()``.
"""

from __future__ import annotations

import importlib.util
import time

import pytest
from helpers import write
from test_transparency import assert_same, run_both

from otel_coldstart import conventions as cv
from otel_coldstart.validate.readers import read_file

APP = """
import sys, time
library, wait = sys.argv[1], float(sys.argv[2])
if library == "gevent":
    from gevent import monkey
    monkey.patch_all()
    import gevent
    spawn, sleep = gevent.spawn, gevent.sleep
    def join(tasks):
        gevent.joinall(tasks)
else:
    import eventlet
    eventlet.monkey_patch()
    spawn, sleep = eventlet.spawn, eventlet.sleep
    def join(tasks):
        for task in tasks:
            task.wait()
import decimal, json, threading

done = []
def work(i):
    # Finishing in reverse order needs each greenlet started less than a step after the one
    # before: 10 ms steps broke on a starved machine (plain and traced disagreed); 100 ms do not.
    sleep(0.1 * (5 - i))
    done.append(i)
join([spawn(work, i) for i in range(5)])
thread = threading.Thread(target=lambda: done.append("thread"))
thread.start()
thread.join()
time.sleep(wait)  # with wait > the ready timeout, the timer fires first
print("done", done, [t.name for t in threading.enumerate()], flush=True)
print(f"end={time.time()}", file=sys.stderr, flush=True)
"""


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
# The timeout fires during the app's sleep, after its monkey-patching and imports: a timer firing
# while gevent is still patching would have our worker import beside it (see README, gevent).
@pytest.mark.parametrize(
    ("timeout", "wait", "trigger"), [("60", 0.0, cv.TRIGGER_EXIT), ("2", 5.0, cv.TRIGGER_TIMEOUT)]
)
def test_monkey_patched_process_same_output_and_the_cold_start_written(
    tmp_path, library: str, timeout: str, wait: float, trigger: str
) -> None:
    # Not importorskip: importing gevent or eventlet here would change this pytest process.
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed")
    script = write(tmp_path / "app.py", APP)
    env = {"OTEL_PYTHON_COLDSTART_READY_TIMEOUT": timeout, "PYTHONWARNINGS": "ignore"}
    plain, traced, trace_file = run_both(script, tmp_path, library, str(wait), env=env)
    ended = time.time()
    assert plain.returncode == 0, plain.stderr
    assert "'thread'" in plain.stdout and "['MainThread']" in plain.stdout
    end_line = traced.stderr.rsplit("end=", 1)[1]
    plain.stderr = plain.stderr.rsplit("end=", 1)[0]
    traced.stderr = traced.stderr.rsplit("end=", 1)[0]
    assert_same(plain, traced)
    (trace,) = read_file(str(trace_file))[1]
    assert trace.root.attributes[cv.READY_TRIGGER] == trigger
    if trigger == cv.TRIGGER_TIMEOUT:
        # Built and written after ready, by a real thread: the exit has nothing left to wait for
        # (it was held 5.5-6 s, the trace lost, when the timer was a patched threading.Timer).
        assert ended - float(end_line) < 4.5
