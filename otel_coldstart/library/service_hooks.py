"""How an instrumentation observes every ``ServiceFactory`` without reaching into its internals.

``services.py`` knows nothing of OpenTelemetry. otel-coldstart's tracing (``service_tracing.py``)
subclasses ``ServiceHooks`` and installs it with ``set_hooks()``; any other observer can do the
same. One set of hooks per process, for every factory (like a class-level patch, minus the patch).

The contract, for each hook that receives ``call``:

- call ``call()`` exactly once (``await call()`` in the async hooks) and return what it returns,
  letting any exception it raises through unchanged: the factory's behaviour must not change;
- the hook runs on the thread (or in the task) of the work it wraps, in that work's context, so a
  context variable set around ``call()`` is what the work sees (the tier's threads run in a copy
  of the caller's context: what is current around ``tier()`` is current in the inits it starts).

With no hooks installed a factory pays one global read per hook point. ``installed`` and
``on_cache_hit`` are read by the library; change them through ``set_hooks()`` only.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not needed at run time: keep the import cost at nothing
    from collections.abc import Awaitable, Callable
    from typing import Any

    from otel_coldstart.library.services import Registration, Tier

__all__ = ["ServiceHooks", "current", "set_hooks"]


class ServiceHooks:
    """Override what you observe; the defaults only run ``call``."""

    #: Called with the name on every ``get()``/``aget()`` answered from the cache; ``None``: not
    #: called (a cache hit then costs one global read). Read when the hooks are installed.
    cache_hit: Callable[[str], None] | None = None

    def init(self, registration: Registration, call: Callable[[], Any]) -> Any:
        """One actual creation of a service (its factory, after its dependencies exist)."""
        return call()

    async def ainit(self, registration: Registration, call: Callable[[], Awaitable[Any]]) -> Any:
        """One actual creation by an ``async def`` factory."""
        return await call()

    def tier(self, tier: Tier, call: Callable[[], Any]) -> Any:
        """A tier's run: ``initialize_critical()`` (critical) or the preload thread (optional)."""
        return call()

    async def atier(self, tier: Tier, call: Callable[[], Awaitable[Any]]) -> Any:
        """``ainitialize_critical()``."""
        return await call()

    def wait(self, name: str, call: Callable[[], Any]) -> Any:
        """Blocking until another thread's or task's creation of ``name`` is over."""
        return call()

    async def await_for(self, name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Awaiting another task's or thread's creation of ``name``."""
        return await call()

    def lazy_load(self, target: str, call: Callable[[], Any]) -> Any:
        """A ``LazyLoader`` resolving ``target`` (``"module:attribute"``) for the first time."""
        return call()


installed: ServiceHooks | None = None
on_cache_hit: Callable[[str], None] | None = None


def set_hooks(hooks: ServiceHooks | None) -> ServiceHooks | None:
    """Install ``hooks`` for every ``ServiceFactory`` (``None`` removes them); returns the previous.

    Install again after changing ``hooks.cache_hit``: it is read here, not on every cache hit.
    """
    global installed, on_cache_hit
    previous = installed
    installed = hooks
    on_cache_hit = hooks.cache_hit if hooks is not None else None
    return previous


def current() -> ServiceHooks | None:
    """The installed hooks, if any."""
    return installed
