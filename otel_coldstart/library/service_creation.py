"""Creating one service: once per attempt, on the calling thread, with every waiter served.

The synchronous core of ``ServiceFactory`` (``services.py``): ``get()`` claims an attempt, creates
the dependencies then the service, and hands the outcome to every caller waiting on the same
attempt. ``service_async.py`` builds the same on an event loop; ``services.py`` adds the tiers and
disposal. No OpenTelemetry here: observers see each init and wait through ``service_hooks``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from _thread import get_ident
from contextvars import ContextVar

from otel_coldstart.library import service_disposal, service_hooks
from otel_coldstart.library.service_disposal import is_awaitable
from otel_coldstart.library.service_errors import ServiceConfigError, ServiceError, ServiceInitError
from otel_coldstart.library.service_registry import Registration, ServiceRegistry, _Slot

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not needed at run time: keep the import cost at nothing
    from collections.abc import Callable
    from typing import Any

__all__ = ["Attempt", "ServiceCreation", "creating"]


class Attempt:
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


#: Services being created in this context (thread or task): a request for one of them again
#: is a cycle through undeclared dependencies (a factory calling ``get()``), not a wait.
creating: ContextVar[tuple[str, ...]] = ContextVar("otel_coldstart_services_resolving", default=())


class ServiceCreation(ServiceRegistry):
    """A registry that creates its services on demand: ``get()`` (tiers: ``ServiceFactory``)."""

    def __init__(self) -> None:
        super().__init__()
        #: Names in order of successful creation: dependencies always precede their dependents.
        self._order: list[str] = []

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

    def _claim(self, slot: _Slot, is_async: bool) -> tuple[Attempt | None, bool]:
        """(the init in flight, whether this caller now owns it); ``(None, False)``: created already."""
        name = slot.registration.name
        resolving = creating.get()
        if name in resolving:
            raise ServiceConfigError("dependency cycle at run time: " + " -> ".join([*resolving, name]))
        with slot.lock:
            if slot.created:
                return None, False
            if slot.pending is not None:
                return slot.pending, False
            slot.pending = Attempt(get_ident(), is_async=is_async)
            return slot.pending, True

    def _create(self, slot: _Slot, pending: Attempt) -> Any:
        """Run one claimed init attempt on this thread: dependencies, then the factory."""
        registration = slot.registration
        name = registration.name
        pending.owner = get_ident()
        token = creating.set((*creating.get(), name))
        try:
            deps = {dep: self._ensure(dep) for dep in registration.depends_on}
            instance = self._run_factory(registration, deps)
        except BaseException as exc:
            error = self._fail_attempt(slot, pending, exc)
            if error is None:
                raise
            raise error from error.cause
        finally:
            creating.reset(token)
        return self._succeed(slot, pending, instance)

    @staticmethod
    def _run_factory(registration: Registration, deps: dict[str, Any]) -> Any:
        """Exactly one call per actual init, seen by the ``init`` hook."""
        hooks = service_hooks.installed
        if hooks is None:
            return ServiceCreation._call_factory(registration, deps)
        return hooks.init(registration, functools.partial(ServiceCreation._call_factory, registration, deps))

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

    def _succeed(self, slot: _Slot, pending: Attempt, instance: Any) -> Any:
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

    def _fail_attempt(self, slot: _Slot, pending: Attempt, exc: BaseException) -> ServiceInitError | None:
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

    def _fail(self, slot: _Slot, pending: Attempt, cause: BaseException, failed: str) -> None:
        with slot.lock:
            slot.pending = None  # not cached: the next get() tries again
        pending.finish(error=cause, failed=failed)

    def _wait_for(self, name: str, pending: Attempt) -> Any:
        """Block until another thread's init of ``name`` is over, seen by the ``wait`` hook."""
        hooks = service_hooks.installed
        if hooks is None:
            return self._wait(name, pending)
        return hooks.wait(name, functools.partial(self._wait, name, pending))

    def _wait(self, name: str, pending: Attempt) -> Any:
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
    def _outcome(name: str, pending: Attempt) -> Any:
        if pending.error is not None:
            if isinstance(pending.error, ServiceError) and not isinstance(pending.error, ServiceInitError):
                raise pending.error
            raise ServiceInitError(name, pending.failed, pending.error) from pending.error
        return pending.instance
