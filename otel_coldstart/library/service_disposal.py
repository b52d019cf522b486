"""Closing created services: the registered disposer, else ``close()``/``aclose()``.

``ServiceFactory.dispose()``/``adispose()`` close in reverse order of creation, keep going past
failures and raise one ``DisposeError`` at the end.
"""

from __future__ import annotations

from otel_coldstart.library.service_errors import DisposeError, ServiceError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from otel_coldstart.library.service_registry import Registration


def is_awaitable(value: Any) -> bool:
    return hasattr(type(value), "__await__")


def close(registration: Registration, instance: Any) -> None:
    """Close one service synchronously (an async close runs to completion if no loop is running)."""
    if registration.disposer is not None:
        result = registration.disposer(instance)
    elif hasattr(instance, "close"):
        result = instance.close()
    elif hasattr(instance, "aclose"):
        result = instance.aclose()
    else:
        return
    if is_awaitable(result):
        _run_awaitable(registration.name, result)


def close_all(taken: list[tuple[Registration, Any]]) -> None:
    """Close each, in the given order; one ``DisposeError`` at the end if any failed."""
    errors: list[tuple[str, BaseException]] = []
    for registration, instance in taken:
        try:
            close(registration, instance)
        except Exception as exc:
            errors.append((registration.name, exc))
    if errors:
        raise DisposeError(errors) from errors[0][1]


async def aclose_all(taken: list[tuple[Registration, Any]]) -> None:
    """``close_all`` awaiting async disposers and preferring ``aclose()`` to ``close()``."""
    errors: list[tuple[str, BaseException]] = []
    for registration, instance in taken:
        try:
            if registration.disposer is not None:
                result = registration.disposer(instance)
            elif hasattr(instance, "aclose"):
                result = instance.aclose()
            elif hasattr(instance, "close"):
                result = instance.close()
            else:
                continue
            if is_awaitable(result):
                await result
        except Exception as exc:
            errors.append((registration.name, exc))
    if errors:
        raise DisposeError(errors) from errors[0][1]


def _run_awaitable(name: str, awaitable: Any) -> None:
    """An async close() reached through the synchronous dispose(): run it if no loop is running."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()
        raise ServiceError(f"service {name!r} closes asynchronously: use 'await adispose()' or 'async with'")

    async def run() -> None:
        await awaitable

    asyncio.run(run())
