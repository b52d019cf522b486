"""ServiceFactory behaviour with real threads, real sleeps and real event loops (no OpenTelemetry).

Timing asserts compare against what sequential execution would take, with wide margins: the
machine may be busy, but sleeping threads do not compete for the CPU.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from otel_coldstart.library.services import (
    DisposeError,
    ServiceConfigError,
    ServiceError,
    ServiceFactory,
    ServiceInitError,
    Tier,
)

CRITICAL, ESSENTIAL, OPTIONAL = Tier.CRITICAL, Tier.ESSENTIAL, Tier.OPTIONAL


class Recorder:
    """Factories that sleep and record when they ran, on which thread, and how often."""

    def __init__(self) -> None:
        self.spans: dict[str, tuple[float, float]] = {}
        self.threads: dict[str, str] = {}
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def _start(self, name: str) -> float:
        with self.lock:
            self.calls[name] = self.calls.get(name, 0) + 1
        self.threads[name] = threading.current_thread().name
        return time.perf_counter()

    def sync(self, name: str, seconds: float, error: Exception | None = None) -> Callable[..., Any]:
        def factory(**deps: Any) -> dict:
            start = self._start(name)
            time.sleep(seconds)
            self.spans[name] = (start, time.perf_counter())
            if error is not None:
                raise error
            return {"name": name, "deps": deps}

        return factory

    def asynchronous(self, name: str, seconds: float, error: Exception | None = None) -> Callable[..., Any]:
        async def factory(**deps: Any) -> dict:
            start = self._start(name)
            await asyncio.sleep(seconds)
            self.spans[name] = (start, time.perf_counter())
            if error is not None:
                raise error
            return {"name": name, "deps": deps}

        return factory


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def new_factory() -> ServiceFactory:
    # This process may hold an armed recorder from another test: never end its cold start here.
    return ServiceFactory(mark_ready_when_critical_done=False)


# --- critical tier ------------------------------------------------------------------------------


def test_critical_services_run_in_parallel_and_honour_dependencies(rec):
    factory = new_factory()
    for name in ("a", "c", "d", "e"):
        factory.register(name, rec.sync(name, 0.2), CRITICAL)
    factory.register("b", rec.sync("b", 0.2), CRITICAL, depends_on=["a"])
    started = time.perf_counter()
    factory.initialize_critical()
    wall = time.perf_counter() - started
    # Longest chain a -> b is 0.4 s; one after another would be 1.0 s.
    assert 0.39 <= wall < 0.75, wall
    assert rec.spans["b"][0] >= rec.spans["a"][1]
    assert len({rec.threads[n] for n in ("a", "c", "d", "e")}) == 4
    b = factory.get("b")
    assert b["deps"]["a"] is factory.get("a")  # the dependency arrives as a keyword argument
    assert all(rec.calls[n] == 1 for n in "abcde")


def test_a_service_starts_when_its_own_dependencies_are_ready_not_level_by_level(rec):
    factory = new_factory()
    factory.register("fast", rec.sync("fast", 0.05), CRITICAL)
    factory.register("slow", rec.sync("slow", 0.5), CRITICAL)
    factory.register("after_fast", rec.sync("after_fast", 0.05), CRITICAL, depends_on=["fast"])
    factory.register("after_both", rec.sync("after_both", 0.01), CRITICAL, depends_on=["fast", "slow"])
    factory.initialize_critical()
    # Level by level, after_fast would wait for slow (0.5 s); here it starts right after fast.
    assert rec.spans["after_fast"][0] - rec.spans["fast"][1] < 0.2
    assert rec.spans["after_fast"][1] < rec.spans["slow"][1]
    assert rec.spans["after_both"][0] >= rec.spans["slow"][1]


def test_critical_tier_pulls_in_non_critical_dependencies_once(rec):
    factory = new_factory()
    factory.register("shared", rec.sync("shared", 0.1), ESSENTIAL)
    factory.register("x", rec.sync("x", 0.01), CRITICAL, depends_on=["shared"])
    factory.register("y", rec.sync("y", 0.01), CRITICAL, depends_on=["shared"])
    factory.register("unused", rec.sync("unused", 0.01), ESSENTIAL)
    factory.initialize_critical()
    assert rec.calls == {"shared": 1, "x": 1, "y": 1}
    assert factory.is_created("shared") and not factory.is_created("unused")


def test_a_small_pool_still_finishes_a_deep_chain(rec):
    factory = ServiceFactory(mark_ready_when_critical_done=False, max_workers=2)
    previous: list[str] = []
    for index in range(12):
        name = f"s{index}"
        factory.register(name, rec.sync(name, 0.001), CRITICAL, depends_on=previous[-1:])
        previous.append(name)
    factory.initialize_critical()
    assert all(factory.is_created(n) for n in previous)


def test_initialize_critical_raises_on_first_failure_without_waiting_for_slow_ones(rec):
    factory = new_factory()
    boom = RuntimeError("cannot connect")
    factory.register("bad", rec.sync("bad", 0.05, error=boom), CRITICAL)
    factory.register("slow", rec.sync("slow", 1.0), CRITICAL)
    factory.register("needs_bad", rec.sync("needs_bad", 0.01), CRITICAL, depends_on=["bad"])
    started = time.perf_counter()
    with pytest.raises(ServiceInitError) as caught:
        factory.initialize_critical()
    assert time.perf_counter() - started < 0.7
    assert caught.value.cause is boom and caught.value.__cause__ is boom
    assert caught.value.failed == "bad"
    assert "needs_bad" not in rec.calls  # never started: its dependency failed
    assert not factory.is_created("bad")


# --- on demand, once --------------------------------------------------------------------------


def test_get_creates_once_under_concurrency(rec):
    factory = new_factory()
    factory.register("db", rec.sync("db", 0.1))
    barrier = threading.Barrier(8)
    results: list[Any] = []

    def worker() -> None:
        barrier.wait()
        results.append(factory.get("db"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(results) == 8
    assert rec.calls["db"] == 1
    assert all(r is results[0] for r in results)
    assert factory.get("db") is results[0]


def test_failure_reaches_every_waiter_and_a_later_get_retries():
    factory = new_factory()
    attempts = []
    gate = threading.Event()

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            gate.wait(5)
            raise ConnectionError("refused")
        return "connected"

    factory.register("db", flaky)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            factory.get("db")
        except ServiceInitError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    while not attempts:
        time.sleep(0.005)
    time.sleep(0.05)  # let the other four block on the attempt in flight
    gate.set()
    for thread in threads:
        thread.join(5)
    assert len(errors) == 5 and len(attempts) == 1
    causes = {id(e.__cause__) for e in errors}
    assert len(causes) == 1 and isinstance(errors[0].__cause__, ConnectionError)
    assert "refused" in str(errors[0])
    assert factory.get("db") == "connected"  # not cached as a failure: the next get retries
    assert len(attempts) == 2


def test_dependency_failure_names_the_failing_service(rec):
    factory = new_factory()
    factory.register("config", rec.sync("config", 0.0, error=KeyError("port")))
    factory.register("server", rec.sync("server", 0.0), depends_on=["config"])
    with pytest.raises(ServiceInitError) as caught:
        factory.get("server")
    assert caught.value.service == "server" and caught.value.failed == "config"
    assert isinstance(caught.value.__cause__, KeyError)
    assert "server" not in rec.calls


def test_factory_calling_get_on_another_service_nests_and_shares_the_cache(rec):
    factory = new_factory()
    factory.register("inner", rec.sync("inner", 0.0))
    factory.register("outer", lambda: {"inner": factory.get("inner")})
    assert factory.get("outer")["inner"] is factory.get("inner")
    assert rec.calls["inner"] == 1


# --- optional preload -------------------------------------------------------------------------


def test_preload_runs_in_the_background_and_get_waits_for_it(rec):
    factory = new_factory()
    # A second's init: "at once" is then far from it even on a starved CI machine (0.11 s once).
    factory.register("search", rec.sync("search", 1.0), OPTIONAL)
    factory.register("report", rec.sync("report", 0.05), OPTIONAL, depends_on=["search"])
    started = time.perf_counter()
    preload = factory.preload_optional()
    assert time.perf_counter() - started < 0.5  # returned at once
    assert not preload.done
    search = factory.get("search")  # still loading on the preload thread: waits for it
    waited = time.perf_counter() - started
    assert 0.9 < waited < 3.0
    assert rec.threads["search"] == "services-preload"
    assert preload.wait(5) and preload.errors == {}
    assert factory.get("report")["deps"]["search"] is search
    assert rec.calls == {"search": 1, "report": 1}


def test_preload_failure_is_kept_on_the_handle_and_retried_by_get():
    factory = new_factory()
    attempts = []

    def sometimes() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("index missing")
        return "index"

    factory.register("index", sometimes, OPTIONAL)
    preload = factory.preload_optional()
    assert preload.wait(5)
    assert isinstance(preload.errors["index"], ServiceInitError)
    assert factory.get("index") == "index"


# --- disposal ---------------------------------------------------------------------------------


class Resource:
    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    def close(self) -> None:
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError(f"{self.name} close failed")


def test_dispose_closes_in_reverse_dependency_order_and_continues_past_failures():
    log: list[str] = []
    factory = new_factory()
    factory.register("config", lambda: Resource("config", log), CRITICAL)
    factory.register("db", lambda config: Resource("db", log, fail=True), CRITICAL, depends_on=["config"])
    factory.register("repo", lambda db: Resource("repo", log), ESSENTIAL, depends_on=["db"])
    factory.register("cache", lambda: Resource("cache", log), CRITICAL)
    factory.register(
        "pool",
        lambda config: object(),
        ESSENTIAL,
        depends_on=["config"],
        disposer=lambda _: log.append("pool"),
    )
    factory.register("never", lambda: Resource("never", log))
    factory.initialize_critical()
    factory.get("repo")
    factory.get("pool")
    with pytest.raises(DisposeError) as caught:
        factory.dispose()
    assert [name for name, _ in caught.value.errors] == ["db"]
    assert set(log) == {"config", "db", "repo", "cache", "pool"}
    # Every service is closed before what it depends on.
    for dependent, dependency in (("repo", "db"), ("db", "config"), ("pool", "config")):
        assert log.index(dependent) < log.index(dependency)
    factory.dispose()  # idempotent
    with pytest.raises(ServiceError):
        factory.get("config")


def test_context_manager_disposes():
    log: list[str] = []
    with new_factory() as factory:
        factory.register("a", lambda: Resource("a", log))
        factory.register("b", lambda a: Resource("b", log), depends_on=["a"])
        factory.get("b")
    assert log == ["b", "a"]


# --- configuration errors ---------------------------------------------------------------------


def test_cycles_are_refused_at_registration():
    factory = new_factory()
    factory.register("a", dict, depends_on=["b"])
    factory.register("b", dict, depends_on=["c"])
    with pytest.raises(ServiceConfigError, match=r"dependency cycle: c -> a -> b -> c"):
        factory.register("c", dict, depends_on=["a"])
    with pytest.raises(ServiceConfigError, match="depends on itself"):
        factory.register("d", dict, depends_on=["d"])


def test_unknown_names_and_other_mistakes_are_clear():
    factory = new_factory()
    factory.register("api", dict, depends_on=["databse"])
    with pytest.raises(ServiceConfigError, match="'api' depends on 'databse', which is not registered"):
        factory.get("api")
    with pytest.raises(ServiceConfigError, match="'api' depends on 'databse'"):
        factory.initialize_critical()
    factory.register("databse", dict)
    assert factory.get("api") == {"databse": {}}
    with pytest.raises(ServiceConfigError, match="unknown service 'nope'"):
        factory.get("nope")
    with pytest.raises(ServiceConfigError, match="already registered"):
        factory.register("api", dict)
    with pytest.raises(ServiceConfigError, match="unknown tier 'urgent'"):
        factory.register("x", dict, tier="urgent")
    assert factory.register("y", dict, tier="Critical").tier is Tier.CRITICAL


def test_a_run_time_cycle_through_undeclared_gets_is_an_error_not_a_hang():
    factory = new_factory()
    factory.register("a", lambda: factory.get("b"))
    factory.register("b", lambda: factory.get("a"))
    with pytest.raises(ServiceConfigError, match="cycle at run time: a -> b -> a"):
        factory.get("a")


def test_async_factories_need_the_async_api():
    factory = new_factory()

    async def make() -> str:
        return "x"

    factory.register("x", make, CRITICAL)
    with pytest.raises(ServiceConfigError, match="async factory"):
        factory.get("x")
    with pytest.raises(ServiceConfigError, match="ainitialize_critical"):
        factory.initialize_critical()
    assert asyncio.run(factory.aget("x")) == "x"


def test_ready_moment_hook_is_skipped_without_a_recorder(monkeypatch):
    """With the flag on and nothing recording, initialize_critical() imports nothing of ours."""
    import sys

    monkeypatch.delitem(sys.modules, "otel_coldstart.deliver.lifecycle", raising=False)
    factory = ServiceFactory()
    factory.register("a", dict, CRITICAL)
    factory.initialize_critical()
    assert "otel_coldstart.deliver.lifecycle" not in sys.modules


# --- async ------------------------------------------------------------------------------------


def test_async_critical_tier_gathers_in_parallel_with_dependencies(rec):
    factory = new_factory()
    for name in ("a", "c", "d"):
        factory.register(name, rec.asynchronous(name, 0.2), CRITICAL)
    factory.register("b", rec.asynchronous("b", 0.2), CRITICAL, depends_on=["a"])
    # A sync factory in the async tier runs in a worker thread, overlapping with the others.
    factory.register("s", rec.sync("s", 0.2), CRITICAL)

    async def main() -> float:
        started = time.perf_counter()
        await factory.ainitialize_critical()
        return time.perf_counter() - started

    wall = asyncio.run(main())
    assert 0.39 <= wall < 0.75, wall  # chain a -> b: 0.4 s; one after another: 1.0 s
    assert rec.spans["b"][0] >= rec.spans["a"][1]
    assert rec.threads["s"] != threading.current_thread().name
    assert rec.spans["s"][0] < rec.spans["a"][1]  # overlapped
    assert all(rec.calls[n] == 1 for n in "abcds")


def test_aget_creates_once_for_concurrent_tasks_and_threads(rec):
    factory = new_factory()
    factory.register("db", rec.asynchronous("db", 0.1))
    factory.register("sync_dep", rec.sync("sync_dep", 0.1))

    async def main() -> list[Any]:
        return await asyncio.gather(*(factory.aget("db") for _ in range(10)))

    results = asyncio.run(main())
    assert rec.calls["db"] == 1 and all(r is results[0] for r in results)

    # A task waiting for an init that a plain thread is running: the loop is not blocked.
    thread = threading.Thread(target=factory.get, args=("sync_dep",))
    thread.start()
    while "sync_dep" not in rec.calls:
        time.sleep(0.005)

    async def wait_for_thread() -> tuple[Any, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.ensure_future(ticker())
        value = await factory.aget("sync_dep")
        task.cancel()
        return value, ticks

    value, ticks = asyncio.run(wait_for_thread())
    thread.join(5)
    assert value is factory.get("sync_dep") and rec.calls["sync_dep"] == 1
    assert ticks >= 2  # the loop kept running while it waited


def test_async_failure_reaches_every_task_and_retries(rec):
    factory = new_factory()
    attempts = []

    async def flaky() -> str:
        attempts.append(1)
        await asyncio.sleep(0.05)
        if len(attempts) == 1:
            raise TimeoutError("no route")
        return "ok"

    factory.register("remote", flaky)
    factory.register("client", rec.asynchronous("client", 0.0), depends_on=["remote"])

    async def main() -> list[Any]:
        return await asyncio.gather(*(factory.aget("client") for _ in range(4)), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert len(attempts) == 1
    assert all(isinstance(o, ServiceInitError) and o.failed == "remote" for o in outcomes)
    assert all(isinstance(o.__cause__, TimeoutError) for o in outcomes)
    assert asyncio.run(factory.aget("client"))["deps"]["remote"] == "ok"


def test_async_dispose_prefers_aclose_and_continues_past_failures():
    log: list[str] = []

    class AsyncResource:
        def __init__(self, name: str, fail: bool = False) -> None:
            self.name, self.fail = name, fail

        async def aclose(self) -> None:
            await asyncio.sleep(0)
            log.append(self.name)
            if self.fail:
                raise RuntimeError("aclose failed")

        def close(self) -> None:  # pragma: no cover - aclose() must win
            log.append(f"sync {self.name}")

    async def make_a() -> AsyncResource:
        return AsyncResource("a")

    async def make_b(a: AsyncResource) -> AsyncResource:
        return AsyncResource("b", fail=True)

    async def main() -> None:
        async with new_factory() as factory:
            factory.register("a", make_a)
            factory.register("b", make_b, depends_on=["a"])
            factory.register("c", lambda b: Resource("c", log), depends_on=["b"])
            await factory.aget("c")

    with pytest.raises(DisposeError) as caught:
        asyncio.run(main())
    assert log == ["c", "b", "a"]
    assert [name for name, _ in caught.value.errors] == ["b"]


def test_sync_dispose_runs_an_async_close_when_no_loop_is_running():
    log: list[str] = []

    class OnlyAclose:
        async def aclose(self) -> None:
            log.append("aclosed")

    factory = new_factory()
    factory.register("x", OnlyAclose)
    factory.get("x")
    factory.dispose()
    assert log == ["aclosed"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is 3.11+")
def test_dispose_error_is_an_exception_group():
    def broken(_):
        raise OSError("socket already closed")

    def also_broken(_):
        raise ValueError("bad")

    factory = ServiceFactory(mark_ready_when_critical_done=False)
    factory.register("a", lambda: object(), disposer=broken)
    factory.register("b", lambda: object(), disposer=also_broken)
    factory.get("a")
    factory.get("b")
    with pytest.raises(DisposeError) as caught:
        factory.dispose()
    group = caught.value
    assert isinstance(group, ExceptionGroup) and isinstance(group, ServiceError)  # noqa: F821
    # What `except* OSError` does: split the group by type.
    oserrors, rest = group.split(OSError)
    assert [str(e) for e in oserrors.exceptions] == ["socket already closed"]
    assert [type(e) for e in rest.exceptions] == [ValueError]
    assert sorted(name for name, _ in group.errors) == ["a", "b"]
    assert str(group).startswith("2 service(s) failed to close: ")
