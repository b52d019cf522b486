"""The documented hook protocol of ServiceFactory and LazyLoader, as a third-party observer uses it."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from otel_coldstart.library import service_hooks
from otel_coldstart.library.lazy import LazyLoader
from otel_coldstart.library.service_hooks import ServiceHooks
from otel_coldstart.library.services import Registration, ServiceFactory, ServiceInitError, Tier

#: What the observer sets around each call: the work must see it (same thread/task and context).
around: contextvars.ContextVar[str] = contextvars.ContextVar("around", default="")


class Recorder(ServiceHooks):
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.cache_hit = self.hit

    def note(self, *event: str) -> None:
        with self.lock:
            self.events.append(event)  # type: ignore[arg-type]

    def hit(self, name: str) -> None:
        self.note("hit", name, "")

    def _around(self, kind: str, name: str, call: Callable[[], Any]) -> Any:
        token = around.set(f"{kind} {name}")
        self.note("start", kind, name)
        try:
            return call()
        finally:
            around.reset(token)
            self.note("end", kind, name)

    def init(self, registration: Registration, call: Callable[[], Any]) -> Any:
        return self._around("init", registration.name, call)

    def tier(self, tier: Tier, call: Callable[[], Any]) -> Any:
        return self._around("tier", tier.value, call)

    def wait(self, name: str, call: Callable[[], Any]) -> Any:
        return self._around("wait", name, call)

    def lazy_load(self, target: str, call: Callable[[], Any]) -> Any:
        return self._around("lazy", target, call)

    async def ainit(self, registration: Registration, call: Callable[[], Awaitable[Any]]) -> Any:
        token = around.set(f"ainit {registration.name}")
        try:
            return await call()
        finally:
            around.reset(token)
            self.note("end", "ainit", registration.name)

    async def atier(self, tier: Tier, call: Callable[[], Awaitable[Any]]) -> Any:
        result = await call()
        self.note("end", "atier", tier.value)
        return result


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    hooks = Recorder()
    previous = service_hooks.set_hooks(hooks)
    try:
        yield hooks
    finally:
        service_hooks.set_hooks(previous)


def test_each_hook_sees_its_work_in_the_works_context(recorder: Recorder) -> None:
    seen: dict[str, str] = {}
    factory = ServiceFactory(mark_ready_when_critical_done=False)
    factory.register("db", lambda: seen.setdefault("db", around.get()) or "db", Tier.CRITICAL)
    factory.register("repo", lambda db: seen.setdefault("repo", around.get()), Tier.CRITICAL, ("db",))
    factory.initialize_critical()
    assert seen == {"db": "init db", "repo": "init repo"}
    factory.get("db")
    ends = [e for e in recorder.events if e[0] == "end"]
    # The tier ends after the inits it ran; each init runs exactly once; the hit is counted.
    assert ends[-1] == ("end", "tier", "critical")
    assert sorted(e[2] for e in ends[:-1]) == ["db", "repo"]
    assert recorder.events[-1] == ("hit", "db", "")


def test_a_waiter_is_seen_waiting_and_failures_pass_through_unchanged(recorder: Recorder) -> None:
    factory = ServiceFactory(mark_ready_when_critical_done=False)
    started = threading.Event()
    factory.register("slow", lambda: started.set() or time.sleep(0.2) or "slow")
    factory.register("bad", lambda: 1 / 0)
    creator = threading.Thread(target=factory.get, args=("slow",))
    creator.start()
    assert started.wait(5)
    assert factory.get("slow") == "slow"
    creator.join()
    assert ("start", "wait", "slow") in recorder.events
    with pytest.raises(ServiceInitError) as failed:
        factory.get("bad")
    assert isinstance(failed.value.__cause__, ZeroDivisionError)
    assert ("end", "init", "bad") in recorder.events


def test_async_hooks_and_the_lazy_loader(recorder: Recorder) -> None:
    async def make() -> str:
        return around.get()

    factory = ServiceFactory(mark_ready_when_critical_done=False)
    factory.register("conn", make, Tier.CRITICAL)
    asyncio.run(factory.ainitialize_critical())
    assert factory.get("conn") == "ainit conn"
    assert ("end", "atier", "critical") in recorder.events

    loader = LazyLoader()
    assert loader.load("colorsys:rgb_to_hsv") is loader.load("colorsys:rgb_to_hsv")
    lazy = [e for e in recorder.events if e[1] == "lazy"]
    assert lazy == [("start", "lazy", "colorsys:rgb_to_hsv"), ("end", "lazy", "colorsys:rgb_to_hsv")]


def test_no_hooks_no_calls_and_set_hooks_returns_the_previous(recorder: Recorder) -> None:
    assert service_hooks.set_hooks(None) is recorder
    factory = ServiceFactory(mark_ready_when_critical_done=False)
    factory.register("a", dict)
    factory.get("a")
    factory.get("a")
    assert recorder.events == []
    assert service_hooks.set_hooks(recorder) is None
