"""A service factory with priority tiers: critical in parallel, essential on demand, optional preloaded.

This module knows nothing about OpenTelemetry: ``service_tracing.py`` observes it from outside
through its hook protocol (``service_hooks.py``). It sits on the start-up path it helps to
shorten, so it imports only what a Python process has loaded anyway (``asyncio`` is imported by
the async methods, which only async code calls). Its parts: ``service_registry.py`` (what is
registered, validation, dependency order), this module (creation: once per attempt, tiers,
waits), ``service_disposal.py`` (closing) and ``service_errors.py``.

Conventions:

- **Factories** are called with each declared dependency as a keyword argument named after it:
  ``register("repo", make_repo, depends_on=("db",))`` calls ``make_repo(db=<the db instance>)``.
  A factory may be ``async def`` (or a ``functools.partial``/bound method of one): such services
  are created through ``aget()`` / ``ainitialize_critical()``. In the async methods, synchronous
  factories run in a worker thread (``asyncio.to_thread``), so they overlap with each other and
  never block the event loop.
- **Tiers**: ``critical`` services are created by ``initialize_critical()``, all at once on
  threads, each as soon as its dependencies exist; ``essential`` ones on first ``get()``;
  ``optional`` ones by ``preload_optional()`` on a background daemon thread (a ``get()`` of one
  still loading waits for it). Any service can be fetched with ``get()`` at any time.
- **Once**: each service is created at most once per successful attempt; concurrent callers of
  ``get()`` wait for the one init in flight and receive the same instance.
- **Failures are not cached.** Every caller waiting on a failed attempt gets a
  ``ServiceInitError`` (the factory's exception is its ``__cause__``); the next ``get()`` starts a
  fresh attempt. A service whose dependency failed fails the same way without running.
- **Disposal** (``dispose()``, ``adispose()``, ``with``/``async with``) closes services in reverse
  order of creation, which is a reverse dependency order: the registered ``disposer(instance)``,
  else ``instance.close()`` (``aclose()`` preferred by ``adispose()``). It continues past failing
  disposers and raises one ``DisposeError`` listing them at the end.
- **Configuration errors** (``ServiceConfigError``): a duplicate name or a dependency cycle is
  refused at ``register()``; a dependency on a name never registered is reported at first use.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from _thread import get_ident
from collections import deque
from contextvars import ContextVar, copy_context

from otel_coldstart.library import service_disposal, service_hooks
from otel_coldstart.library.service_disposal import is_awaitable
from otel_coldstart.library.service_errors import (
    DisposeError,
    ServiceConfigError,
    ServiceError,
    ServiceInitError,
)
from otel_coldstart.library.service_registry import Registration, ServiceRegistry, Tier, _Slot

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not needed at run time: keep the import cost at nothing
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "DisposeError",
    "Preload",
    "Registration",
    "ServiceConfigError",
    "ServiceError",
    "ServiceFactory",
    "ServiceInitError",
    "Tier",
]


class _Pending:
    """One init attempt in flight: waiters block on it (threads) or register a callback (tasks)."""

    __slots__ = ("callbacks", "error", "event", "failed", "instance", "is_async", "lock", "owner")

    def __init__(self, owner: int | None, is_async: bool = False) -> None:
        #: Thread running the attempt (None while a critical-tier claim waits for its worker).
        self.owner = owner
        self.is_async = is_async
        self.event = threading.Event()
        self.lock = threading.Lock()
        self.callbacks: list[Callable[[], None]] = []
        self.instance: Any = None
        self.error: BaseException | None = None
        self.failed = ""

    def finish(self, instance: Any = None, error: BaseException | None = None, failed: str = "") -> None:
        with self.lock:
            self.instance, self.error, self.failed = instance, error, failed
            self.event.set()
            callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()

    def add_callback(self, callback: Callable[[], None]) -> None:
        with self.lock:
            if not self.event.is_set():
                self.callbacks.append(callback)
                return
        callback()


class Preload:
    """Handle of a background ``preload_optional()`` run."""

    def __init__(self, names: tuple[str, ...]) -> None:
        #: The services it creates, in dependency order.
        self.names = names
        #: Services whose preload failed (a later ``get()`` retries them).
        self.errors: dict[str, BaseException] = {}
        self._done = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the preload finished; ``False`` on timeout."""
        return self._done.wait(timeout)


#: Services being created in this context (thread or task): a request for one of them again
#: is a cycle through undeclared dependencies (a factory calling ``get()``), not a wait.
_resolving: ContextVar[tuple[str, ...]] = ContextVar("otel_coldstart_services_resolving", default=())


class ServiceFactory(ServiceRegistry):
    """A registry of named services (``ServiceRegistry``: ``register()``, tiers, dependencies) that
    creates them (tiers, caching, once per attempt) and disposes of them.

    ``mark_ready_when_critical_done``: when ``initialize_critical()`` succeeds, declare the
    cold start's ready moment (if otel-coldstart is recording and ``OTEL_PYTHON_COLDSTART_READY``
    is ``auto``; otherwise nothing happens, and nothing is imported).
    """

    def __init__(self, *, mark_ready_when_critical_done: bool = True, max_workers: int = 32) -> None:
        super().__init__()
        self.mark_ready_when_critical_done = mark_ready_when_critical_done
        self.max_workers = max(1, max_workers)
        #: Names in order of successful creation: dependencies always precede their dependents.
        self._order: list[str] = []

    # --- synchronous creation -------------------------------------------------------------------

    def get(self, name: str) -> Any:
        """The service ``name``, created now (once, thread-safe) if it does not exist yet."""
        slot = self._slots.get(name)
        if slot is not None and slot.created:
            if service_hooks.on_cache_hit is not None:
                service_hooks.on_cache_hit(name)
            return slot.instance
        return self._ensure(name)

    def _ensure(self, name: str) -> Any:
        slot = self._slot(name)
        if slot.created:
            return slot.instance
        registration = slot.registration
        if registration.is_async:
            raise ServiceConfigError(
                f"service {name!r} has an async factory: use aget() or ainitialize_critical()"
            )
        pending, owner = self._claim(slot, is_async=False)
        if pending is None:
            return slot.instance
        if not owner:
            return self._wait_for(name, pending)
        return self._create(slot, pending)

    def _claim(self, slot: _Slot, is_async: bool) -> tuple[_Pending | None, bool]:
        """(the init in flight, whether this caller now owns it); ``(None, False)``: created already."""
        name = slot.registration.name
        resolving = _resolving.get()
        if name in resolving:
            raise ServiceConfigError("dependency cycle at run time: " + " -> ".join([*resolving, name]))
        with slot.lock:
            if slot.created:
                return None, False
            if slot.pending is not None:
                return slot.pending, False
            slot.pending = _Pending(get_ident(), is_async=is_async)
            return slot.pending, True

    def _create(self, slot: _Slot, pending: _Pending) -> Any:
        """Run one claimed init attempt on this thread: dependencies, then the factory."""
        registration = slot.registration
        name = registration.name
        pending.owner = get_ident()
        token = _resolving.set((*_resolving.get(), name))
        try:
            deps = {dep: self._ensure(dep) for dep in registration.depends_on}
            instance = self._run_factory(registration, deps)
        except BaseException as exc:
            error = self._fail_attempt(slot, pending, exc)
            if error is None:
                raise
            raise error from error.cause
        finally:
            _resolving.reset(token)
        return self._succeed(slot, pending, instance)

    @staticmethod
    def _run_factory(registration: Registration, deps: dict[str, Any]) -> Any:
        """Exactly one call per actual init, seen by the ``init`` hook."""
        hooks = service_hooks.installed
        if hooks is None:
            return ServiceFactory._call_factory(registration, deps)
        return hooks.init(registration, functools.partial(ServiceFactory._call_factory, registration, deps))

    @staticmethod
    def _call_factory(registration: Registration, deps: dict[str, Any]) -> Any:
        instance = registration.factory(**deps)
        if is_awaitable(instance):
            close = getattr(instance, "close", None)
            if close is not None:
                close()  # a never-awaited coroutine would warn at garbage collection
            raise ServiceConfigError(
                f"service {registration.name!r}: the factory returned an awaitable; "
                "make it 'async def' and use aget() / ainitialize_critical()"
            )
        return instance

    def _succeed(self, slot: _Slot, pending: _Pending, instance: Any) -> Any:
        name = slot.registration.name
        with self._lock:
            closed = self._closed
            if not closed:
                with slot.lock:
                    slot.instance = instance
                    slot.created = True
                    slot.pending = None
                self._order.append(name)
        if closed:
            # Disposed while this init ran: nobody can reach the instance any more, so close it.
            slot.pending = None
            with contextlib.suppress(Exception):
                service_disposal.close(slot.registration, instance)
            error = ServiceError(f"service {name!r}: the factory was closed while it was being created")
            pending.finish(error=error, failed=name)
            raise error
        pending.finish(instance)
        return instance

    def _fail_attempt(self, slot: _Slot, pending: _Pending, exc: BaseException) -> ServiceInitError | None:
        """Give every waiter the failure of this attempt; returns what the creator raises instead
        of ``exc``, or ``None`` to re-raise ``exc`` itself.

        A configuration mistake stays one; KeyboardInterrupt, SystemExit and cancellation pass
        through as they are (waiters must not hang on them); any other error becomes a
        ``ServiceInitError`` naming the service that failed first.
        """
        name = slot.registration.name
        if isinstance(exc, ServiceConfigError) or not isinstance(exc, Exception):
            self._fail(slot, pending, exc, name)
            return None
        failed, cause = (exc.failed, exc.cause) if isinstance(exc, ServiceInitError) else (name, exc)
        self._fail(slot, pending, cause, failed)
        return ServiceInitError(name, failed, cause)

    def _fail(self, slot: _Slot, pending: _Pending, cause: BaseException, failed: str) -> None:
        with slot.lock:
            slot.pending = None  # not cached: the next get() tries again
        pending.finish(error=cause, failed=failed)

    def _wait_for(self, name: str, pending: _Pending) -> Any:
        """Block until another thread's init of ``name`` is over, seen by the ``wait`` hook."""
        hooks = service_hooks.installed
        if hooks is None:
            return self._wait(name, pending)
        return hooks.wait(name, functools.partial(self._wait, name, pending))

    def _wait(self, name: str, pending: _Pending) -> Any:
        if pending.owner == get_ident():
            if pending.is_async:
                raise ServiceError(
                    f"service {name!r} is being created by an async task on this thread: "
                    f"use 'await aget({name!r})' instead of get()"
                )
            raise ServiceConfigError(f"dependency cycle at run time: {name!r} requested while being created")
        pending.event.wait()
        return self._outcome(name, pending)

    @staticmethod
    def _outcome(name: str, pending: _Pending) -> Any:
        if pending.error is not None:
            if isinstance(pending.error, ServiceError) and not isinstance(pending.error, ServiceInitError):
                raise pending.error
            raise ServiceInitError(name, pending.failed, pending.error) from pending.error
        return pending.instance

    def initialize_critical(self) -> None:
        """Create every critical service (and what they depend on) in parallel on threads.

        A service starts as soon as its dependencies exist. Returns when all exist;
        raises ``ServiceInitError`` as soon as one fails (services already running finish in
        the background; those not started yet are not started).
        """
        hooks = service_hooks.installed
        if hooks is None:
            self._initialize_critical()
        else:
            hooks.tier(Tier.CRITICAL, self._initialize_critical)

    def _initialize_critical(self) -> None:
        names = self._closure(Tier.CRITICAL)
        for name in names:
            if self._slots[name].registration.is_async:
                raise ServiceConfigError(
                    f"critical service {name!r} has an async factory: use ainitialize_critical()"
                )
        claimed: deque[tuple[_Slot, _Pending]] = deque()
        waiting: list[tuple[str, _Pending]] = []
        for name in names:
            slot = self._slot(name)
            with slot.lock:
                if slot.created:
                    continue
                if slot.pending is None:
                    slot.pending = _Pending(None)
                    claimed.append((slot, slot.pending))
                waiting.append((name, slot.pending))
        if waiting:
            self._run_claimed(claimed, waiting)
        self._critical_done()

    def _run_claimed(
        self, claimed: deque[tuple[_Slot, _Pending]], waiting: list[tuple[str, _Pending]]
    ) -> None:
        finished = threading.Event()
        lock = threading.Lock()
        remaining = [len(waiting)]
        failure: list[tuple[str, _Pending]] = []

        def on_done(name: str, pending: _Pending) -> None:
            with lock:
                remaining[0] -= 1
                if pending.error is not None and not failure:
                    failure.append((name, pending))
                if failure or remaining[0] == 0:
                    finished.set()

        for name, pending in waiting:
            pending.add_callback(functools.partial(on_done, name, pending))

        def worker() -> None:
            # Claims are taken in dependency order, so a claim's dependencies were taken by
            # workers already running (or done): waiting on them cannot deadlock the pool.
            while True:
                try:
                    slot, pending = claimed.popleft()
                except IndexError:
                    return
                if failure:
                    failed_name, failed = failure[0]
                    assert failed.error is not None  # only failed attempts are in ``failure``
                    self._fail(slot, pending, failed.error, failed.failed or failed_name)
                    continue
                # An error is delivered to every waiter through the pending attempt.
                with contextlib.suppress(BaseException):
                    self._create(slot, pending)

        for index in range(min(len(claimed), self.max_workers)):
            # Each worker runs in a copy of the caller's context: what is current here (the
            # tier's span, say) is the parent of the inits there.
            thread = threading.Thread(
                target=copy_context().run, args=(worker,), name=f"services-critical-{index}", daemon=True
            )
            thread.start()
        finished.wait()
        if failure:
            name, pending = failure[0]
            assert pending.error is not None
            raise ServiceInitError(name, pending.failed or name, pending.error) from pending.error

    def _critical_done(self) -> None:
        if not self.mark_ready_when_critical_done:
            return
        # Only if the recorder is loaded: otherwise there is no cold start to end, and importing
        # it here would cost the very start-up this factory exists to shorten.
        lifecycle = sys.modules.get("otel_coldstart.deliver.lifecycle")
        if lifecycle is not None:
            from otel_coldstart.conventions import TRIGGER_CRITICAL_TIER

            lifecycle.mark_ready(TRIGGER_CRITICAL_TIER)

    def preload_optional(self) -> Preload:
        """Start creating the optional services on a background daemon thread; returns at once."""
        names = self._closure(Tier.OPTIONAL)
        handle = Preload(names)
        thread = threading.Thread(
            target=copy_context().run,
            args=(self._preload_worker, handle),
            name="services-preload",
            daemon=True,
        )
        handle.thread = thread
        thread.start()
        return handle

    def _preload_worker(self, handle: Preload) -> None:
        hooks = service_hooks.installed
        if hooks is None:
            self._preload(handle)
        else:
            hooks.tier(Tier.OPTIONAL, functools.partial(self._preload, handle))

    def _preload(self, handle: Preload) -> None:
        try:
            for name in handle.names:
                if self._closed:
                    break
                if self._slots[name].registration.is_async:
                    continue  # async services need an event loop: aget() creates them
                try:
                    self._ensure(name)
                except Exception as exc:
                    handle.errors[name] = exc
        finally:
            handle._done.set()

    # --- asynchronous creation ------------------------------------------------------------------

    async def aget(self, name: str) -> Any:
        """The service ``name``, created now (once) if needed; async factories are awaited."""
        slot = self._slots.get(name)
        if slot is not None and slot.created:
            if service_hooks.on_cache_hit is not None:
                service_hooks.on_cache_hit(name)
            return slot.instance
        return await self._aensure(name)

    async def _aensure(self, name: str) -> Any:
        slot = self._slot(name)
        if slot.created:
            return slot.instance
        pending, owner = self._claim(slot, is_async=True)
        if pending is None:
            return slot.instance
        if not owner:
            return await self._await_for(name, pending)
        return await self._acreate(slot, pending)

    async def _acreate(self, slot: _Slot, pending: _Pending) -> Any:
        import asyncio

        registration = slot.registration
        name = registration.name
        token = _resolving.set((*_resolving.get(), name))
        try:
            dep_names = registration.depends_on
            if len(dep_names) == 1:
                values = [await self._aensure(dep_names[0])]
            else:
                values = await asyncio.gather(*(self._aensure(dep) for dep in dep_names))
            deps = dict(zip(dep_names, values, strict=True))
            if registration.is_async:
                instance = await self._arun_factory(registration, deps)
            else:
                instance = await asyncio.to_thread(self._run_factory, registration, deps)
        except BaseException as exc:
            error = self._fail_attempt(slot, pending, exc)
            if error is None:
                raise
            raise error from error.cause
        finally:
            _resolving.reset(token)
        return self._succeed(slot, pending, instance)

    @staticmethod
    async def _arun_factory(registration: Registration, deps: dict[str, Any]) -> Any:
        """Exactly one call per actual async init, seen by the ``ainit`` hook."""
        hooks = service_hooks.installed
        if hooks is None:
            return await registration.factory(**deps)
        return await hooks.ainit(registration, functools.partial(registration.factory, **deps))

    async def _await_for(self, name: str, pending: _Pending) -> Any:
        """Wait without blocking the loop for another task's or thread's init of ``name``, seen
        by the ``await_for`` hook."""
        hooks = service_hooks.installed
        if hooks is None:
            return await self._await(name, pending)
        return await hooks.await_for(name, functools.partial(self._await, name, pending))

    async def _await(self, name: str, pending: _Pending) -> Any:
        import asyncio

        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def resolve() -> None:
            if not future.done():
                future.set_result(None)

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(resolve)

        pending.add_callback(wake)
        await future
        return self._outcome(name, pending)

    async def ainitialize_critical(self) -> None:
        """Create every critical service concurrently: async factories with ``asyncio.gather``,
        sync ones in worker threads; each starts as soon as its dependencies exist."""
        hooks = service_hooks.installed
        if hooks is None:
            await self._ainitialize_critical()
        else:
            await hooks.atier(Tier.CRITICAL, self._ainitialize_critical)

    async def _ainitialize_critical(self) -> None:
        import asyncio

        names = self._closure(Tier.CRITICAL)
        # Tasks start in creation order, i.e. dependencies first: each claims its own service
        # before a dependent could claim it.
        await asyncio.gather(*(self._aensure(name) for name in names))
        self._critical_done()

    # --- disposal ---------------------------------------------------------------------------

    def _take_for_disposal(self) -> list[tuple[Registration, Any]] | None:
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            order, self._order = self._order, []
        taken = []
        for name in reversed(order):
            slot = self._slots[name]
            with slot.lock:
                taken.append((slot.registration, slot.instance))
                slot.instance = None
                slot.created = False
        return taken

    def dispose(self) -> None:
        """Close every created service in reverse dependency order; raise ``DisposeError`` at the
        end if any failed. Idempotent; the factory cannot be used afterwards."""
        taken = self._take_for_disposal()
        if taken is None:
            return
        service_disposal.close_all(taken)

    close = dispose

    async def adispose(self) -> None:
        """Like ``dispose()``, awaiting async disposers and preferring ``aclose()`` to ``close()``."""
        taken = self._take_for_disposal()
        if taken is None:
            return
        await service_disposal.aclose_all(taken)

    aclose = adispose

    def __enter__(self) -> ServiceFactory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()

    async def __aenter__(self) -> ServiceFactory:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.adispose()

    def __repr__(self) -> str:
        created = sum(1 for slot in self._slots.values() if slot.created)
        closed = " closed" if self._closed else ""
        return f"<ServiceFactory services={len(self._slots)} created={created}{closed}>"
