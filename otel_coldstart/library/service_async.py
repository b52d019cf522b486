"""Creating services from async code: ``aget()``, never blocking the event loop.

Async factories are awaited; synchronous ones run in a worker thread (``asyncio.to_thread``). A
task waiting on an attempt another task or thread runs is woken through the loop. ``asyncio`` is
imported only when an async method runs: sync-only programs never pay for it.
"""

from __future__ import annotations

import contextlib
import functools

from otel_coldstart.library import service_hooks
from otel_coldstart.library.service_creation import Attempt, ServiceCreation, creating
from otel_coldstart.library.service_registry import Registration, _Slot

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not needed at run time: keep the import cost at nothing
    from typing import Any

__all__ = ["AsyncServiceCreation"]


class AsyncServiceCreation(ServiceCreation):
    """``ServiceCreation`` with the async counterparts of ``get()`` and its waits."""

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

    async def _acreate(self, slot: _Slot, pending: Attempt) -> Any:
        import asyncio

        registration = slot.registration
        name = registration.name
        token = creating.set((*creating.get(), name))
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
            creating.reset(token)
        return self._succeed(slot, pending, instance)

    @staticmethod
    async def _arun_factory(registration: Registration, deps: dict[str, Any]) -> Any:
        """Exactly one call per actual async init, seen by the ``ainit`` hook."""
        hooks = service_hooks.installed
        if hooks is None:
            return await registration.factory(**deps)
        return await hooks.ainit(registration, functools.partial(registration.factory, **deps))

    async def _await_for(self, name: str, pending: Attempt) -> Any:
        """Wait without blocking the loop for another task's or thread's init of ``name``, seen
        by the ``await_for`` hook."""
        hooks = service_hooks.installed
        if hooks is None:
            return await self._await(name, pending)
        return await hooks.await_for(name, functools.partial(self._await, name, pending))

    async def _await(self, name: str, pending: Attempt) -> Any:
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
