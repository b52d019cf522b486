"""The registered services: names, tiers, dependencies, validation and dependency order.

``ServiceFactory`` (``services.py``) is a registry that also creates and disposes; this part knows
only what was registered and in which order things must be created. No OpenTelemetry here.
"""

from __future__ import annotations

import functools
import threading
from enum import Enum

from otel_coldstart.library.service_errors import ServiceConfigError, ServiceError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not needed at run time: keep the import cost at nothing
    from collections.abc import Callable, Iterable
    from typing import Any

    from otel_coldstart.library.service_creation import Attempt

__all__ = ["Registration", "ServiceRegistry", "Tier"]

_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect


class Tier(str, Enum):
    """When a service is created."""

    #: Before the application is ready, in parallel (``initialize_critical()``).
    CRITICAL = "critical"
    #: On first use (``get()``).
    ESSENTIAL = "essential"
    #: In the background after start-up (``preload_optional()``), or on first use.
    OPTIONAL = "optional"

    def __str__(self) -> str:
        return self.value


def _is_async_callable(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    code = getattr(fn, "__code__", None)  # functions and bound methods
    if code is None and not isinstance(fn, type):
        code = getattr(type(fn).__call__, "__code__", None)  # an instance with an async __call__
    return code is not None and bool(code.co_flags & _CO_COROUTINE)


class Registration:
    """What ``register()`` recorded about one service (read by the instrumentation too)."""

    __slots__ = ("depends_on", "disposer", "factory", "is_async", "name", "tier")

    def __init__(
        self,
        name: str,
        factory: Callable[..., Any],
        tier: Tier,
        depends_on: tuple[str, ...],
        disposer: Callable[[Any], Any] | None,
    ) -> None:
        self.name = name
        self.factory = factory
        self.tier = tier
        self.depends_on = depends_on
        self.disposer = disposer
        self.is_async = _is_async_callable(factory)

    def __repr__(self) -> str:
        return f"Registration({self.name!r}, tier={self.tier.value}, depends_on={self.depends_on!r})"


class _Slot:
    __slots__ = ("created", "instance", "lock", "pending", "registration")

    def __init__(self, registration: Registration) -> None:
        self.registration = registration
        self.lock = threading.Lock()
        self.created = False
        self.instance: Any = None
        self.pending: Attempt | None = None


class ServiceRegistry:
    """Services by name with their tier and dependencies; refuses duplicates and cycles."""

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()
        self._validated = True
        self._closed = False

    def register(
        self,
        name: str,
        factory: Callable[..., Any],
        tier: Tier | str = Tier.ESSENTIAL,
        depends_on: Iterable[str] = (),
        disposer: Callable[[Any], Any] | None = None,
    ) -> Registration:
        """Register ``factory`` as service ``name``; see the module docstring for the conventions."""
        if not isinstance(name, str) or not name:
            raise ServiceConfigError(f"a service name must be a non-empty string, not {name!r}")
        if not callable(factory):
            raise ServiceConfigError(f"service {name!r}: factory {factory!r} is not callable")
        try:
            tier = Tier(tier.lower() if isinstance(tier, str) and not isinstance(tier, Tier) else tier)
        except ValueError:
            tiers = ", ".join(t.value for t in Tier)
            raise ServiceConfigError(f"service {name!r}: unknown tier {tier!r} (use {tiers})") from None
        if isinstance(depends_on, str):
            depends_on = (depends_on,)
        deps = tuple(dict.fromkeys(depends_on))
        if name in deps:
            raise ServiceConfigError(f"service {name!r} depends on itself")
        registration = Registration(name, factory, tier, deps, disposer)
        with self._lock:
            if self._closed:
                raise ServiceError("this ServiceFactory is closed")
            if name in self._slots:
                raise ServiceConfigError(f"service {name!r} is already registered")
            cycle = self._path_to(name, deps)
            if cycle:
                raise ServiceConfigError("dependency cycle: " + " -> ".join([name, *cycle]))
            self._slots[name] = _Slot(registration)
            self._validated = False
        return registration

    def _path_to(self, target: str, starts: tuple[str, ...]) -> list[str]:
        """A dependency path from one of ``starts`` to ``target`` among registered services."""
        seen: set[str] = set()
        stack = [(start, [start]) for start in reversed(starts)]
        while stack:
            name, path = stack.pop()
            if name == target:
                return path
            if name in seen or name not in self._slots:
                continue
            seen.add(name)
            for dep in reversed(self._slots[name].registration.depends_on):
                stack.append((dep, [*path, dep]))
        return []

    def _validate(self) -> None:
        with self._lock:
            if self._validated:
                return
            for slot in self._slots.values():
                for dep in slot.registration.depends_on:
                    if dep not in self._slots:
                        raise ServiceConfigError(
                            f"service {slot.registration.name!r} depends on {dep!r}, which is not registered"
                        )
            self._validated = True

    def _slot(self, name: str) -> _Slot:
        if not self._validated:
            self._validate()
        slot = self._slots.get(name)
        if slot is None:
            known = ", ".join(sorted(self._slots)) or "none"
            raise ServiceConfigError(f"unknown service {name!r} (registered: {known})")
        if self._closed:
            raise ServiceError("this ServiceFactory is closed")
        return slot

    def registrations(self) -> list[Registration]:
        return [slot.registration for slot in self._slots.values()]

    def is_created(self, name: str) -> bool:
        """The service has been created (and not disposed)."""
        slot = self._slots.get(name)
        return slot is not None and slot.created

    def _closure(self, tier: Tier) -> tuple[str, ...]:
        """The services of ``tier`` and everything they depend on, dependencies first."""
        if not self._validated:
            self._validate()
        order: list[str] = []
        placed: set[str] = set()
        for name, slot in list(self._slots.items()):
            if slot.registration.tier is not tier or name in placed:
                continue
            # Iterative post-order walk: deep dependency chains must not hit the recursion limit.
            stack: list[tuple[str, bool]] = [(name, False)]
            while stack:
                current, expanded = stack.pop()
                if current in placed:
                    continue
                if expanded:
                    placed.add(current)
                    order.append(current)
                    continue
                stack.append((current, True))
                for dep in reversed(self._slots[current].registration.depends_on):
                    if dep not in placed:
                        stack.append((dep, False))
        return tuple(order)
