"""Memory: snapshots, the observable instruments, and memory on the cold-start span tree."""

from __future__ import annotations

import contextlib
import io
import json
import mmap
import os
from pathlib import Path

import pytest
from helpers import run_instrumented, write
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from otlp_receiver import RECEIVERS

from otel_coldstart.cli import main
from otel_coldstart.record import memory

MB = 1024 * 1024


def _points(reader: InMemoryMetricReader) -> dict[str, tuple[str, float]]:
    """name -> (unit, value of its single data point) from one collection."""
    found = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points = list(metric.data.data_points)
                assert len(points) == 1, metric.name
                found[metric.name] = (metric.unit, points[0].value)
    return found


def test_snapshot_reads_the_kernel_figures():
    before = memory.take_snapshot("before")
    block = bytearray(40 * MB)  # bytearray(n) writes its zeros: the pages become resident
    after = memory.take_snapshot("after")
    assert 0.9 * 40 * MB <= after.rss - before.rss <= 1.1 * 40 * MB
    assert after.peak_rss >= after.rss
    assert after.vms >= after.rss
    del block
    freed = memory.take_snapshot("freed")
    # The high-water mark is the kernel's: it remembers the block after it was freed.
    assert freed.peak_rss >= after.rss
    assert freed.rss < after.rss


def test_instruments_through_an_in_memory_reader():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        memory.MemoryGauges().register(provider)
        first = _points(reader)
        assert {name for name, *_ in memory.INSTRUMENTS} - {"coldstart.memory.growth_rate"} <= set(first)
        assert first["process.memory.usage"][0] == "By"
        assert abs(first["process.memory.usage"][1] - memory.rss()) < 8 * MB
        assert first["process.memory.virtual"][1] >= first["process.memory.usage"][1]
        assert first["coldstart.memory.peak"][1] >= first["process.memory.usage"][1]
        assert 0 < first["coldstart.memory.uss"][1] <= first["process.memory.usage"][1]

        # Fresh anonymous pages, each touched: a heap allocation may reuse pages the process has
        # already faulted in (its free lists) or never touch calloc'd ones, and then RSS would not
        # grow by the block's size whoever reads it.
        block = mmap.mmap(-1, 30 * MB)
        for offset in range(0, 30 * MB, mmap.PAGESIZE):
            block[offset] = 1
        second = _points(reader)
        # Growth needs two collections; the 30 MB allocated between them must show as growth.
        assert second["coldstart.memory.growth_rate"][0] == "By/s"
        assert second["coldstart.memory.growth_rate"][1] > 0
        assert second["process.memory.usage"][1] - first["process.memory.usage"][1] >= 0.9 * 30 * MB
        block.close()
    finally:
        provider.shutdown()


def test_process_instruments_follow_the_semantic_convention_types():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        memory.MemoryGauges().register(provider)
        data = reader.get_metrics_data()
        kinds = {
            metric.name: type(metric.data).__name__
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        }
        # An asynchronous UpDownCounter is exported as a non-monotonic cumulative Sum.
        assert kinds["process.memory.usage"] == "Sum"
        assert kinds["process.memory.virtual"] == "Sum"
        assert kinds["coldstart.memory.peak"] == "Gauge"
    finally:
        provider.shutdown()


def test_snapshot_after_fork_reads_the_child():
    memory.rss()  # open the kept descriptor in the parent first: the child must not reuse it
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        import psutil

        before = memory.rss()
        # Fresh anonymous pages, each touched: a heap allocation may reuse pages the process has
        # already faulted in (its free lists) or never touch calloc'd ones, and then RSS would not
        # grow by the block's size whoever reads it.
        block = mmap.mmap(-1, 30 * MB)
        for offset in range(0, 30 * MB, mmap.PAGESIZE):
            block[offset] = 1
        ours, truth = memory.rss(), psutil.Process().memory_info().rss
        os.write(write_fd, f"{ours - before} {ours - truth}".encode())
        del block
        os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    growth, error = map(int, os.read(read_fd, 64).split())
    os.close(read_fd)
    # Had the child read the parent's /proc entry (a descriptor inherited across fork), it would
    # miss its own 30 MB block and disagree with psutil.
    assert growth >= 0.9 * 30 * MB
    assert abs(error) < 4 * MB


def test_memory_on_the_span_tree_and_per_import_deltas(tmp_path: Path):
    """A module that allocates 50 MB at import: its span's delta and the root's peak show it."""
    write(tmp_path / "hog.py", "BLOCK = bytearray(50 * 1024 * 1024)\n")
    script = write(
        tmp_path / "app.py", "import json\nimport hog\nimport otel_coldstart\notel_coldstart.mark_ready()\n"
    )
    run = run_instrumented(
        script, tmp_path / "trace.jsonl", cwd=tmp_path, env={"OTEL_PYTHON_COLDSTART_IMPORT_MEMORY": "1"}
    )
    assert run.completed.returncode == 0, run.completed.stderr
    trace = run.trace()
    root = trace.root
    hog = next(s for s in trace.spans if s.attributes.get("coldstart.module.name") == "hog")
    delta = hog.attributes["coldstart.memory.rss_delta"]
    assert 0.9 * 50 * MB <= delta <= 1.1 * 50 * MB

    snapshots = [e for e in root.events if e.name == "memory.snapshot"]
    labels = [e.attributes["coldstart.memory.label"] for e in snapshots]
    assert labels[0] == "hook_installed" and labels[-1] == "ready"
    # The app's memory is counted from the launcher's end: the hook is armed before the
    # launcher's own imports, which are not the app's.
    first = snapshots[labels.index("launcher_done")].attributes
    last = snapshots[-1].attributes
    assert first["coldstart.memory.rss"] >= snapshots[0].attributes["coldstart.memory.rss"]
    assert 0.9 * 50 * MB <= last["coldstart.memory.rss"] - first["coldstart.memory.rss"] <= 1.2 * 50 * MB
    assert root.attributes["coldstart.memory.rss_at_ready"] == last["coldstart.memory.rss"]
    assert root.attributes["coldstart.memory.peak_rss"] >= root.attributes["coldstart.memory.rss_at_ready"]
    assert last["coldstart.memory.growth_rate"] > 0
    # Without the option, import spans carry no delta (the default costs nothing per import).
    plain = run_instrumented(script, tmp_path / "plain.jsonl", cwd=tmp_path)
    hog_plain = next(s for s in plain.trace().spans if s.attributes.get("coldstart.module.name") == "hog")
    assert "coldstart.memory.rss_delta" not in hog_plain.attributes


SERVICE_APP = """
import otel_coldstart
from otel_coldstart import ServiceFactory, Tier

def make_hog():
    return bytearray(50 * 1024 * 1024)

def make_config():
    return {"port": 8080}

factory = ServiceFactory(mark_ready_when_critical_done=False)
factory.register("config", make_config, Tier.CRITICAL)
factory.register("hog", make_hog, Tier.CRITICAL)
factory.initialize_critical()
otel_coldstart.mark_ready()
"""


def test_a_service_that_allocates_50_mb_shows_in_its_span_the_peak_and_the_report(tmp_path: Path):
    script = write(tmp_path / "app.py", SERVICE_APP)
    trace_file = tmp_path / "trace.jsonl"
    run = run_instrumented(script, trace_file, cwd=tmp_path)
    assert run.completed.returncode == 0, run.completed.stderr
    trace = run.trace()
    hog = next(s for s in trace.spans if s.attributes.get("coldstart.service.name") == "hog")
    assert 0.9 * 50 * MB <= hog.attributes["coldstart.memory.rss_delta"] <= 1.1 * 50 * MB

    root = trace.root
    snapshots = {e.attributes["coldstart.memory.label"]: e.attributes for e in root.events}
    growth = root.attributes["coldstart.memory.peak_rss"] - snapshots["launcher_done"]["coldstart.memory.rss"]
    # The peak grew by the block plus what the app imported meanwhile: our services module, and
    # the services instrumentation (wrapt) that its first import brings in, 4-12 MB by Python.
    assert 0.9 * 50 * MB <= growth <= 1.1 * 50 * MB + 12 * MB

    # The launcher execs the app: its own (larger) peak must not pass for the app's.
    assert (
        snapshots["hook_installed"]["coldstart.memory.peak_rss"]
        < 1.2 * snapshots["hook_installed"]["coldstart.memory.rss"]
    )

    # The validator, from the span tree alone, names the allocating service first.
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(["validate", str(trace_file), "--format", "json"])
    # The verdict on the cold start's duration depends on the machine's load; not this test's matter.
    assert code in (0, 1), out.getvalue()
    memory_figures = json.loads(out.getvalue())["representative"]["memory"]
    assert memory_figures["top_consumers"][0] == {
        "kind": "service",
        "name": "hog",
        "rss_delta_bytes": hog.attributes["coldstart.memory.rss_delta"],
    }
    assert memory_figures["peak_rss_bytes"] == root.attributes["coldstart.memory.peak_rss"]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_memory_instruments_are_exported_over_otlp(tmp_path: Path, protocol: str):
    """Through the standard configuration (OTEL_METRICS_EXPORTER=otlp) to a real receiver."""
    # The app lives until the SDK is set up after ready (the worker imports it: seconds on a busy
    # machine) and then for a few export intervals.
    script = write(
        tmp_path / "app.py",
        "import time, otel_coldstart\n"
        "from opentelemetry import metrics\n"
        "otel_coldstart.mark_ready()\n"
        "deadline = time.monotonic() + 30\n"
        "while type(metrics.get_meter_provider()).__module__.startswith('opentelemetry.metrics')"
        " and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "time.sleep(0.8)\n",
    )
    with RECEIVERS[protocol]() as receiver:
        env = {
            **receiver.env(),
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
        }
        run = run_instrumented(script, tmp_path / "trace.jsonl", env=env)
        assert run.completed.returncode == 0, run.completed.stderr
        points = receiver.points()
    by_name = {p.name: p for p in points}
    assert {"process.memory.usage", "process.memory.virtual", "coldstart.memory.peak"} <= set(by_name)
    usage = by_name["process.memory.usage"]
    assert (usage.kind, usage.unit, usage.service) == ("sum", "By", "coldstart-test")
    assert 5 * MB < usage.value < 500 * MB
    assert by_name["coldstart.memory.peak"].kind == "gauge"
    assert by_name["coldstart.memory.peak"].value >= usage.value * 0.5
