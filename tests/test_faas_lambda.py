"""AWS Lambda: real runtimes against a loopback Runtime API that freezes them (SIGSTOP), as Lambda does.

The function runs the way the OpenTelemetry Lambda layer runs it: ``opentelemetry-instrument python
-m awslambdaric handler.fn`` with ``AWS_LAMBDA_RUNTIME_API`` set (and, for the generic detector, a
hand-written runtime over urllib). Spans and metrics go to a real OTLP receiver; what has arrived
is read at the moment the sandbox freezes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import clean_env, run_instrumented, write
from lambda_runtime_api import FUNCTION_ARN, RuntimeAPI
from otlp_receiver import HttpReceiver, ReceivedPoint, ReceivedSpan

from otel_coldstart import conventions as cv
from otel_coldstart.deliver import lambda_sandbox
from otel_coldstart.launch import faas_lambda

pytest.importorskip("awslambdaric")

HANDLER = """
import decimal
import json
import sqlite3
import time


def fn(event, context):
    time.sleep(event.get("sleep", 0))
    if event.get("until_built"):
        from otel_coldstart.deliver import lifecycle

        deadline = time.monotonic() + 60
        while not lifecycle._built.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
    if event.get("mark_ready"):
        import otel_coldstart

        otel_coldstart.mark_ready()
    if event.get("fail"):
        raise ValueError("asked to fail: " + json.dumps(event))
    return {"echo": event, "sum": str(decimal.Decimal("0.1") + decimal.Decimal("0.2"))}
"""

#: A runtime of its own over urllib (what a custom runtime looks like): the generic detector.
URLLIB_RUNTIME = """
import json
import os
import urllib.request

import handler

base = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(base + "next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(response.read())
    try:
        body, kind = json.dumps(handler.fn(event, None)).encode(), "response"
    except Exception as exc:
        body, kind = json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}).encode(), "error"
    urllib.request.urlopen(urllib.request.Request(base + request_id + "/" + kind, data=body)).read()
"""

EVENTS = [{"n": 1}, {"n": 2, "fail": True}, {"n": 3}]
#: Generous for a busy 2-core machine: the assertions are about order (before the freeze), not speed.
BUDGET_S = "15"


@dataclass
class Seen:
    spans: list[ReceivedSpan]
    points: list[ReceivedPoint]


@dataclass
class LambdaRun:
    api: RuntimeAPI
    receiver: HttpReceiver
    output: str
    spool: Path
    trace_file: Path
    work: Path

    def at_freeze(self, number: int) -> Seen:
        return self.api.freezes[number - 1].seen

    def answers(self) -> list[tuple[str, bytes, str | None]]:
        # The function's directory differs between runs; it appears in an error's stack trace.
        where = str(self.work).encode()
        return [(a.kind, a.body.replace(where, b"<dir>"), a.error_type) for a in self.api.answers]


def run_function(
    tmp_path: Path,
    events: list[Any],
    *,
    instrumented: bool = True,
    runtime: str = "awslambdaric",
    receiver_mode: str = "up",
    env: dict[str, str] | None = None,
    name: str = "run",
    snapshot_s: float = 0.0,
    first_event_delay_s: float = 0.0,
) -> LambdaRun:
    """Run a function through ``events`` one by one: each answer is followed by a freeze and a thaw."""
    work = tmp_path / name
    write(work / "handler.py", HANDLER)
    write(work / "runtime.py", URLLIB_RUNTIME)
    receiver = HttpReceiver(receiver_mode)
    api = RuntimeAPI(
        on_freeze=lambda: Seen(receiver.spans(), receiver.points()),
        snapshot_s=snapshot_s,
    )
    spool = work / "spool"
    full_env = {
        **clean_env(),
        **api.env(),
        **receiver.env(),
        "OTEL_PYTHON_DISTRO": "otel_coldstart",
        "OTEL_PYTHON_CONFIGURATOR": "otel_coldstart",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PYTHON_COLDSTART_SPOOL_DIR": str(spool),
        "OTEL_PYTHON_COLDSTART_TRACE_FILE": str(work / "trace.jsonl"),
        "OTEL_PYTHON_COLDSTART_LAMBDA_FLUSH_TIMEOUT": BUDGET_S,
        # Metrics leave when we flush them before a freeze, not on a timer of their own.
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        **(env or {}),
    }
    program = ["-m", "awslambdaric", "handler.fn"] if runtime == "awslambdaric" else ["runtime.py"]
    command = [sys.executable, *program]
    if instrumented:
        command.insert(0, str(Path(sys.executable).with_name("opentelemetry-instrument")))
    log = open(work / "output.txt", "w")  # noqa: SIM115 (closed below, after the process is gone)
    process = subprocess.Popen(command, cwd=work, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    api.pid = process.pid
    try:
        for number, event in enumerate(events, start=1):
            if number == 1 and first_event_delay_s:
                # Initialised ahead of demand: Lambda freezes the sandbox after init until work comes.
                deadline = time.monotonic() + 120
                while not api.nexts and time.monotonic() < deadline:
                    time.sleep(0.02)
                os.kill(process.pid, signal.SIGSTOP)
                time.sleep(first_event_delay_s)
                os.kill(process.pid, signal.SIGCONT)
            api.add_event(event)
            if not api.wait_frozen(number, timeout=120):
                pytest.fail(
                    f"the runtime never asked for event {number + 1}: {(work / 'output.txt').read_text()}"
                )
            if number < len(events):
                api.thaw()
    finally:
        api.close()
        receiver.close()
        process.wait(30)
        log.close()
    return LambdaRun(api, receiver, (work / "output.txt").read_text(), spool, work / "trace.jsonl", work)


def by_name(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> LambdaRun:
    return run_function(tmp_path_factory.mktemp("lambda"), EVENTS)


def test_the_cold_start_arrives_before_the_first_freeze(traced: LambdaRun) -> None:
    seen = traced.at_freeze(1)
    roots = by_name(seen.spans, "coldstart")
    assert len(roots) == 1, traced.output[-3000:]
    root = roots[0]
    assert root.attributes["coldstart.ready.trigger"] == "lambda"
    assert root.attributes[cv.LAMBDA_INIT_TYPE] == "on-demand"
    assert 0 < root.attributes[cv.LAMBDA_INIT_DURATION_NS] < 120e9
    # The whole trace is there, not just its root: the handler module's import among the rest.
    trace = [span for span in seen.spans if span.trace_id == root.trace_id]
    assert "import handler" in {span.name for span in trace}
    assert "import awslambdaric.bootstrap" in {span.name for span in trace}
    # The first invocation, inside the cold-start trace (init vs first invocation) ...
    (first,) = by_name(trace, cv.LAMBDA_FIRST_INVOCATION_SPAN)
    assert first.attributes[cv.LAMBDA_PROACTIVE_INIT] is False
    # ... and as the FaaS server span, linked to the cold start.
    (invocation,) = by_name(seen.spans, "coldstart-fn")
    assert invocation.attributes["faas.coldstart"] is True
    assert invocation.kind == 2  # SPAN_KIND_SERVER
    assert invocation.links == (root.span_id,)
    assert invocation.attributes["faas.invocation_id"] == first.attributes["faas.invocation_id"]
    assert invocation.attributes["cloud.account.id"] == "123456789012"
    assert invocation.attributes["aws.lambda.invoked_arn"] == FUNCTION_ARN
    # FaaS metrics left with it.
    names = {point.name for point in seen.points}
    assert {"faas.init_duration", "faas.coldstarts"} <= names
    (coldstarts,) = [p for p in seen.points if p.name == "faas.coldstarts"]
    assert coldstarts.value == 1
    (init,) = [p for p in seen.points if p.name == "faas.init_duration"]
    assert init.unit == "s"
    assert init.value == pytest.approx(root.attributes[cv.LAMBDA_INIT_DURATION_NS] / 1e9)


def test_faas_coldstart_is_true_on_the_first_invocation_only(traced: LambdaRun) -> None:
    seen = traced.at_freeze(len(EVENTS))
    invocations = by_name(seen.spans, "coldstart-fn")
    assert len(invocations) == len(EVENTS)
    ids = [answer.request_id for answer in traced.api.answers]
    flags = {span.attributes["faas.invocation_id"]: span.attributes["faas.coldstart"] for span in invocations}
    assert flags == {ids[0]: True, ids[1]: False, ids[2]: False}
    assert [len(span.links) for span in invocations if span.attributes["faas.coldstart"] is False] == [0, 0]
    # One cold start per sandbox, however many invocations.
    assert len(by_name(seen.spans, "coldstart")) == 1
    # Each invocation's span is out before the freeze that follows it.
    for number in range(1, len(EVENTS) + 1):
        arrived = {
            s.attributes.get("faas.invocation_id")
            for s in by_name(traced.at_freeze(number).spans, "coldstart-fn")
        }
        assert arrived == set(ids[:number])


def test_resource_carries_the_lambda_environment(traced: LambdaRun) -> None:
    seen = traced.at_freeze(1)
    for span in (by_name(seen.spans, "coldstart")[0], by_name(seen.spans, "coldstart-fn")[0]):
        resource = span.resource
        assert resource["faas.name"] == "coldstart-fn"
        assert resource["faas.version"] == "$LATEST"
        assert resource["faas.max_memory"] == 512 * 1024 * 1024
        assert resource["cloud.provider"] == "aws"
        assert resource["cloud.platform"] == "aws_lambda"
        assert resource["cloud.region"] == "eu-west-1"
        assert resource["service.name"] == "coldstart-fn"


def test_responses_are_identical_to_plain(traced: LambdaRun, tmp_path: Path) -> None:
    plain = run_function(tmp_path, EVENTS, instrumented=False, name="plain")
    assert traced.answers() == plain.answers()
    assert [kind for kind, _, _ in plain.answers()] == ["response", "error", "response"]
    # The error span is the failed invocation's.
    seen = traced.at_freeze(len(EVENTS))
    failed = [
        s
        for s in by_name(seen.spans, "coldstart-fn")
        if s.attributes["faas.invocation_id"] == traced.api.answers[1].request_id
    ]
    assert failed and failed[0].attributes["faas.coldstart"] is False
    assert not list(traced.spool.glob("*")) if traced.spool.exists() else True


def test_awslambdaric_polling_from_a_thread_as_on_python_3_12_runtimes(tmp_path: Path) -> None:
    # AWS_EXECUTION_ENV=AWS_Lambda_python3.12+ makes awslambdaric ask for work from a pool thread.
    run = run_function(tmp_path, EVENTS[:2], env={"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"})
    (root,) = by_name(run.at_freeze(1).spans, "coldstart")
    assert root.attributes["coldstart.ready.trigger"] == "lambda"
    invocations = by_name(run.at_freeze(2).spans, "coldstart-fn")
    assert sorted(s.attributes["faas.coldstart"] for s in invocations) == [False, True]


def test_a_runtime_over_urllib_is_detected_too(tmp_path: Path) -> None:
    run = run_function(tmp_path, EVENTS[:2], runtime="urllib")
    seen = run.at_freeze(1)
    (root,) = by_name(seen.spans, "coldstart")
    assert root.attributes["coldstart.ready.trigger"] == "lambda"
    assert "import handler" in {s.name for s in seen.spans if s.trace_id == root.trace_id}
    last = by_name(run.at_freeze(2).spans, "coldstart-fn")
    assert sorted(s.attributes["faas.coldstart"] for s in last) == [False, True]
    plain = run_function(tmp_path, EVENTS[:2], runtime="urllib", instrumented=False, name="plain")
    assert run.answers() == plain.answers()


def test_snapstart_restore_is_its_own_phase(tmp_path: Path) -> None:
    run = run_function(
        tmp_path, EVENTS[:1], env={"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}, snapshot_s=1.5
    )
    assert len(run.api.restores) == 1
    seen = run.at_freeze(1)
    (root,) = by_name(seen.spans, "coldstart")
    assert root.attributes[cv.LAMBDA_INIT_TYPE] == "snap-start"
    trace = [s for s in seen.spans if s.trace_id == root.trace_id]
    (snapshot,) = by_name(trace, cv.LAMBDA_SNAPSHOT_SPAN)
    (restore,) = by_name(trace, cv.LAMBDA_RESTORE_SPAN)
    assert restore.attributes["coldstart.phase"] == "restore"
    assert snapshot.attributes["coldstart.phase"] == "snapshot"
    # The init a caller waits for is the restore, not the 1.5 s the sandbox sat in its snapshot,
    # and what ran before the snapshot is counted apart.
    assert root.attributes[cv.LAMBDA_INIT_DURATION_NS] < 1.5e9
    assert root.attributes[cv.LAMBDA_BEFORE_SNAPSHOT_NS] > 0
    assert "import handler" in {s.name for s in trace}


def test_provisioned_init_is_flagged_not_counted_as_waiting(tmp_path: Path) -> None:
    run = run_function(
        tmp_path,
        EVENTS[:1],
        env={"AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency"},
        first_event_delay_s=2.0,
    )
    seen = run.at_freeze(1)
    (root,) = by_name(seen.spans, "coldstart")
    assert root.attributes[cv.LAMBDA_INIT_TYPE] == "provisioned-concurrency"
    (first,) = by_name(seen.spans, cv.LAMBDA_FIRST_INVOCATION_SPAN)
    assert first.attributes[cv.LAMBDA_PROACTIVE_INIT] is True
    assert first.attributes[cv.LAMBDA_INIT_GAP_NS] >= 1.5e9
    (invocation,) = by_name(seen.spans, "coldstart-fn")
    assert invocation.attributes["faas.coldstart"] is True


def spooled_spans(directory: Path) -> list[Any]:
    """The spans the spool holds, claimed or free: raw copies built as a drainer builds them."""
    from otel_coldstart.deliver import sdk_setup, spool

    found: list[Any] = []
    for entry in spool.list_entries(str(directory)):
        if entry.kind == spool.RAW:
            found += sdk_setup.build_from_raw(spool.read_raw(entry.path))
        else:
            found += [s for d in spool.read_documents(entry.path) for s in spool.spans_from_document(d)]
    return found


def test_collector_down_the_cold_start_is_spooled_under_tmp_before_the_freeze(tmp_path: Path) -> None:
    run = run_function(
        tmp_path, EVENTS[:1], receiver_mode="down", env={"OTEL_PYTHON_COLDSTART_LAMBDA_FLUSH_TIMEOUT": "1"}
    )
    names = {span.name for span in spooled_spans(run.spool)}
    assert {"coldstart", "import handler"} <= names, run.output[-3000:]


def test_collector_hanging_the_freeze_waits_no_longer_than_the_budget(tmp_path: Path) -> None:
    budget = 1.0
    run = run_function(
        tmp_path,
        # The first invocation outlasts the trace's local build: what remains is the network part.
        [{"n": 1, "until_built": True}, {"n": 2}],
        receiver_mode="hang",
        # The exporter's own timeout, 4 s: above the bound below, which a freeze that waited for
        # the exporter would break.
        env={"OTEL_PYTHON_COLDSTART_LAMBDA_FLUSH_TIMEOUT": str(budget), "OTEL_EXPORTER_OTLP_TIMEOUT": "4"},
    )
    # From each answer to the request that lets the sandbox freeze: the budget, plus slack for a
    # busy machine; below the exporter's own timeout. The second freeze flushes the invocation's
    # span through the SDK's batch processor, which exports on the caller's thread and used to
    # hold the sandbox for the exporter's whole timeout.
    assert len(run.api.freezes) >= 2, run.output[-3000:]
    for answer, freeze in zip(run.api.answers, run.api.freezes[:2], strict=True):
        assert freeze.at - answer.at < budget + 2.0, run.output[-3000:]
    assert [a.kind for a in run.api.answers] == ["response", "response"]
    # Not sent, so kept: the write-ahead copy is in the spool.
    assert "coldstart" in {span.name for span in spooled_spans(run.spool)}


@pytest.mark.parametrize("ready", ["explicit", "auto"])
def test_explicit_ready_in_the_first_invocation_is_honoured(tmp_path: Path, ready: str) -> None:
    run = run_function(
        tmp_path, [{"n": 1, "mark_ready": True}], env={"OTEL_PYTHON_COLDSTART_READY": ready}, name=ready
    )
    (root,) = by_name(run.at_freeze(1).spans, "coldstart")
    # explicit: the application's own moment, in its first invocation; auto: the end of init came first.
    assert root.attributes["coldstart.ready.trigger"] == ("explicit" if ready == "explicit" else "lambda")


def test_explicit_ready_never_declared_still_ends_before_the_freeze(tmp_path: Path) -> None:
    run = run_function(tmp_path, [{"n": 1}], env={"OTEL_PYTHON_COLDSTART_READY": "explicit"})
    (root,) = by_name(run.at_freeze(1).spans, "coldstart")
    assert root.attributes["coldstart.ready.trigger"] == "lambda"


def test_many_invocations_each_span_out_before_its_freeze(tmp_path: Path) -> None:
    events = [{"n": n} for n in range(12)]
    run = run_function(tmp_path, events)
    ids = [answer.request_id for answer in run.api.answers]
    for number in range(1, len(events) + 1):
        spans = by_name(run.at_freeze(number).spans, "coldstart-fn")
        assert {s.attributes["faas.invocation_id"] for s in spans} == set(ids[:number])
    final = by_name(run.at_freeze(len(events)).spans, "coldstart-fn")
    assert sum(1 for s in final if s.attributes["faas.coldstart"]) == 1
    assert len(by_name(run.at_freeze(len(events)).spans, "coldstart")) == 1


def run_init_failure(work: Path, instrumented: bool) -> tuple[int, list[bytes], str]:
    """A handler module that raises while imported: the runtime reports an init error and exits."""
    write(work / "broken.py", "raise RuntimeError('no config')\n")
    with RuntimeAPI() as api, HttpReceiver() as receiver:
        command = [sys.executable, "-m", "awslambdaric", "broken.fn"]
        if instrumented:
            command.insert(0, str(Path(sys.executable).with_name("opentelemetry-instrument")))
        env = {
            **clean_env(),
            **api.env(),
            **receiver.env(),
            "OTEL_PYTHON_DISTRO": "otel_coldstart",
            "OTEL_PYTHON_CONFIGURATOR": "otel_coldstart",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_PYTHON_COLDSTART_SPOOL_DIR": str(work / "spool"),
        }
        completed = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=120)
        # The runtime has exited: the cold start was acknowledged by the receiver, or is in the
        # spool (its exit was not given time to send it). Only when neither is true is there
        # anything worth waiting for.
        spooled = []
        if (work / "spool").is_dir():
            spooled = [span for span in spooled_spans(work / "spool") if span.name == "coldstart"]
        if instrumented and not spooled:
            receiver.wait_for_spans(1, timeout=5)
        roots = by_name(receiver.spans(), "coldstart") or spooled
        trigger = roots[0].attributes["coldstart.ready.trigger"] if roots else ""
        bodies = [body.replace(str(work).encode(), b"<dir>") for body in api.init_errors]
        return completed.returncode, bodies, trigger


@pytest.fixture(scope="module")
def init_failures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    base = tmp_path_factory.mktemp("init-error")
    plain = run_init_failure(write(base / "plain" / "x", "").parent, instrumented=False)
    ours = run_init_failure(write(base / "ours" / "x", "").parent, instrumented=True)
    return plain, ours


def test_an_init_error_is_reported_as_without_us(init_failures: tuple[Any, Any]) -> None:
    plain, ours = init_failures
    assert plain[0] == ours[0] == 1
    assert len(plain[1]) == len(ours[1]) == 1
    plain_error, our_error = json.loads(plain[1][0]), json.loads(ours[1][0])
    plain_stack, our_stack = plain_error.pop("stackTrace"), our_error.pop("stackTrace")
    assert plain_error == our_error
    # Known difference (the import recorder's, imports.py): its wrapper of importlib's
    # _find_and_load is one more "<frozen importlib._bootstrap>" frame in a traceback that
    # traceback.extract_tb reads whole, as awslambdaric's init-error report does.
    extra = [frame for frame in our_stack if frame not in plain_stack]
    assert len(extra) == 1 and "<frozen importlib._bootstrap>" in extra[0] and "_find_and_load" in extra[0]
    assert [frame for frame in our_stack if frame != extra[0]] == plain_stack


def test_after_an_init_error_the_cold_start_is_delivered_or_spooled(init_failures: tuple[Any, Any]) -> None:
    _, ours = init_failures
    # The runtime exits after its init error: the cold start ends at exit, delivered or spooled.
    assert ours[2] == "exit"


def test_resource_attributes_outside_lambda_are_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    assert lambda_sandbox.resource_attributes() == {}
    assert faas_lambda.install() is False


@pytest.mark.parametrize(
    ("method", "url", "kind"),
    [
        ("GET", "/2018-06-01/runtime/invocation/next", "next"),
        ("GET", "/2018-06-01/runtime/restore/next", "restore"),
        ("POST", "/2018-06-01/runtime/invocation/8476a536-e9f4/response", "response"),
        ("POST", "/2018-06-01/runtime/invocation/8476a536-e9f4/error", "error"),
        ("POST", "/2018-06-01/runtime/init/error", None),
        ("GET", "/api/users/next", None),
        ("GET", "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next", "next"),
    ],
)
def test_runtime_api_requests_are_recognised(method: str, url: str, kind: str | None) -> None:
    assert faas_lambda._classify(method, url) == kind


def test_the_trace_file_holds_init_and_first_invocation(traced: LambdaRun) -> None:
    from otel_coldstart.validate.readers import read_file

    _, traces = read_file(str(traced.trace_file))
    (trace,) = traces
    names = {span.name for span in trace.spans}
    assert {"coldstart", cv.LAMBDA_FIRST_INVOCATION_SPAN} <= names
    assert json.loads(traced.answers()[0][1])["sum"] == "0.3"


def validate(trace_file: Path, targets: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    targets_file = write(tmp_path / "targets.toml", targets)
    command = [str(Path(sys.executable).with_name("otel-coldstart")), "validate", str(trace_file)]
    text = subprocess.run(
        [*command, "--targets", str(targets_file), "--color", "never"], capture_output=True, text=True
    )
    document = subprocess.run(
        [*command, "--targets", str(targets_file), "--format", "json"], capture_output=True, text=True
    )
    return text, json.loads(document.stdout)


def test_validator_judges_lambda_init_and_first_invocation(traced: LambdaRun, tmp_path: Path) -> None:
    text, document = validate(
        traced.trace_file, "max_lambda_init_ms = 120000\nmax_first_invocation_ms = 0.000001\n", tmp_path
    )
    verdicts = {t["key"]: t for t in document["targets"]}
    assert verdicts["max_lambda_init_ms"]["status"] == "pass"
    # A limit no invocation can meet: the first invocation is measured, and fails it.
    assert verdicts["max_first_invocation_ms"]["status"] == "fail"
    assert verdicts["max_first_invocation_ms"]["measured"] > 0
    split = document["representative"]["lambda"]
    assert split["init_type"] == "on-demand"
    assert split["proactive"] is False
    assert split["init_ns"] == pytest.approx(document["representative"]["cold_start_ms"] * 1e6, rel=0.01)
    assert text.returncode != 0
    assert "Lambda (on-demand): init" in text.stdout and "first invocation" in text.stdout
    # The first invocation comes after the root by design: neither a phase of it nor clock skew.
    assert "first_invocation" not in document["representative"]["phases"]
    assert "outside their parent" not in text.stdout


def test_validator_judges_a_snapstart_cold_start_on_its_restore(tmp_path: Path) -> None:
    run = run_function(
        tmp_path, EVENTS[:1], env={"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}, snapshot_s=3.0
    )
    # The root spans the 3 s in the snapshot; the cold start a caller saw is the restore.
    _, document = validate(run.trace_file, "max_cold_start_ms = 2500\n", tmp_path)
    (cold_start,) = [t for t in document["targets"] if t["key"] == "max_cold_start_ms"]
    assert cold_start["measured"] < 2500, document["representative"]["lambda"]
    assert document["representative"]["cold_start_ms"] > 3000
    assert document["representative"]["lambda"]["before_snapshot_ns"] > 0


def test_a_cold_start_outside_lambda_has_no_lambda_split(tmp_path: Path) -> None:
    from otel_coldstart.validate import faas

    # Ready before exit: on Python 3.12+ a trace first built at exit fails (no new threads then).
    # The app lives on until the trace is built after ready, as a service would.
    script = (
        "import decimal, time\nimport otel_coldstart\notel_coldstart.mark_ready()\n"
        "from otel_coldstart.deliver import lifecycle\n"
        "lifecycle._built.wait(60)\n"
    )
    run = run_instrumented(write(tmp_path / "app.py", script), tmp_path / "trace.jsonl")
    assert run.completed.returncode == 0, run.completed.stderr
    trace = run.trace()
    assert faas.split(trace) is None
    assert "coldstart.lambda.init_type" not in trace.root.attributes
    assert "faas.name" not in trace.root.resource
