"""A service factory with priority tiers: critical in parallel, essential on demand, optional preloaded.

This module knows nothing about OpenTelemetry: ``service_tracing.py`` observes it from outside
through its hook protocol (``service_hooks.py``). It sits on the start-up path it helps to
shorten, so it imports only what a Python process has loaded anyway (``asyncio`` is imported by
the async methods, which only async code calls). Its parts, each class building on the one before:
``service_registry.py`` (what is registered, validation, dependency order),
``service_creation.py`` (``get()``: once per attempt, waits), ``service_async.py`` (``aget()``),
this module (the tiers: the critical pool, the optional preload; disposal), with
``service_disposal.py`` (closing) and ``service_errors.py``.

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
from collections import deque
from contextvars import copy_context

from otel_coldstart.library import service_disposal, service_hooks
from otel_coldstart.library.service_async import AsyncServiceCreation
from otel_coldstart.library.service_creation import Attempt
from otel_coldstart.library.service_errors import (
    DisposeError,
    ServiceConfigError,
    ServiceError,
    ServiceInitError,
)
from otel_coldstart.library.service_registry import Registration, Tier, _Slot

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not needed at run time: keep the import cost at nothing
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


class ServiceFactory(AsyncServiceCreation):
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
        claimed: deque[tuple[_Slot, Attempt]] = deque()
        waiting: list[tuple[str, Attempt]] = []
        for name in names:
            slot = self._slot(name)
            with slot.lock:
                if slot.created:
                    continue
                if slot.pending is None:
                    slot.pending = Attempt(None)
                    claimed.append((slot, slot.pending))
                waiting.append((name, slot.pending))
        if waiting:
            self._run_claimed(claimed, waiting)
        self._critical_done()

    def _run_claimed(self, claimed: deque[tuple[_Slot, Attempt]], waiting: list[tuple[str, Attempt]]) -> None:
        finished = threading.Event()
        lock = threading.Lock()
        remaining = [len(waiting)]
        failure: list[tuple[str, Attempt]] = []

        def on_done(name: str, pending: Attempt) -> None:
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
