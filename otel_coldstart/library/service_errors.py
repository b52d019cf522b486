"""The service factory's errors (``services.py`` re-exports them; so does ``otel_coldstart``)."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["DisposeError", "ServiceConfigError", "ServiceError", "ServiceInitError"]


class ServiceError(Exception):
    """Base class of the service factory's errors."""


class ServiceConfigError(ServiceError, ValueError):
    """The registrations cannot work: unknown name, duplicate, dependency cycle, async misuse."""


class ServiceInitError(ServiceError):
    """A service could not be created. ``__cause__`` is the exception its (or a dependency's)
    factory raised; ``failed`` names the service whose factory raised it."""

    def __init__(self, service: str, failed: str, cause: BaseException) -> None:
        self.service = service
        self.failed = failed
        self.cause = cause
        via = "" if failed == service else f" (dependency {failed!r} failed)"
        super().__init__(f"service {service!r} failed to initialise{via}: {type(cause).__name__}: {cause}")


def _dispose_message(errors: list[tuple[str, BaseException]]) -> str:
    detail = "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in errors)
    return f"{len(errors)} service(s) failed to close: {detail}"


if sys.version_info >= (3, 11):

    class DisposeError(ServiceError, ExceptionGroup):  # noqa: F821 - builtin from 3.11
        """One or more services failed to close; every other service was still closed.

        An ``ExceptionGroup`` of the disposers' exceptions (``except*`` works); ``errors`` pairs
        each with its service's name.
        """

        def __new__(cls, errors: list[tuple[str, BaseException]]) -> DisposeError:
            self = super().__new__(cls, _dispose_message(errors), [exc for _, exc in errors])
            self.errors = errors
            return self

        def __init__(self, errors: list[tuple[str, BaseException]]) -> None:
            super().__init__(_dispose_message(errors), [exc for _, exc in errors])

        def __str__(self) -> str:
            return self.message

        def derive(self, excs: Sequence[Exception]) -> ExceptionGroup:  # noqa: F821
            # A split (``except*``) keeps part of the group: a plain group, names no longer apply.
            return ExceptionGroup(self.message, excs)  # noqa: F821

else:

    class DisposeError(ServiceError):
        """One or more services failed to close; every other service was still closed."""

        def __init__(self, errors: list[tuple[str, BaseException]]) -> None:
            self.errors = errors
            self.exceptions = tuple(exc for _, exc in errors)
            super().__init__(_dispose_message(errors))
