"""Service and lazy-load spans, added from outside (``services.py`` knows nothing of it).

Before the ready moment each observed call appends a timeline record (turned into a span at
ready, like imports); after it, the same call runs under a live span of the global tracer.

Observed:

- ``ServiceFactory`` and ``LazyLoader`` through their hook protocol (``service_hooks.py``): one
  ``init <name>`` span per service init; the tier phases (``coldstart.tier critical``,
  ``coldstart.tier optional preload``; the factory runs its pool threads and the preload thread
  in a copy of the caller's context, so the inits there find the phase as their parent through
  the ``current_record`` ContextVar and, after ready, through the OpenTelemetry context); waiting
  for another thread's or task's init as its own ``wait <name>`` span (the time is visible, not
  hidden inside a child); cache hits counted onto the init span (before ready only); and
  ``coldstart.lazy_load`` spans, parents of the imports they trigger;
- with wrapt, each when its module is first imported: user-named factories
  (``OTEL_PYTHON_COLDSTART_SERVICE_FACTORIES``) and ``svcs`` containers.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import wrapt

from otel_coldstart import conventions as cv
from otel_coldstart.library import service_hooks
from otel_coldstart.library.service_hooks import ServiceHooks
from otel_coldstart.record import memory, timeline
from otel_coldstart.record.imports import _describe

TRACER_NAME = "otel_coldstart.library.services"
FACTORIES_ENV = "OTEL_PYTHON_COLDSTART_SERVICE_FACTORIES"
_state = timeline.state
_log = logging.getLogger("otel_coldstart")
#: Where live (after-ready) spans go; ``None``: the global tracer provider.
tracer_provider: Any = None


def _live_span(name: str, kind: str, attrs: dict[str, Any]) -> Any:
    from opentelemetry import trace

    return trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider).start_as_current_span(
        name, attributes={cv.KIND: kind, **attrs}
    )


def _untraced() -> bool:
    """No recorder in this process (our distro not chosen, nothing armed): wrappers step aside."""
    return _state.timeline is None and not _state.ready


def run_traced(
    kind: str, name: str, attrs: dict[str, Any], call: Callable[[], Any], parent: Any = None
) -> Any:
    """Run ``call()`` as a record (before ready) or under a live span (after ready).

    Service inits also carry their RSS delta (process-wide: in a parallel tier it includes what
    concurrent inits allocated meanwhile) and their outcome.
    """
    if _untraced():
        return call()
    # The thread's own name: thread ids are reused, so the timeline's id -> name map can be stale.
    attrs[cv.THREAD_NAME] = threading.current_thread().name
    opened = timeline.open_record(kind, name, attrs, parent)
    rss_before = memory.rss() if kind == cv.KIND_SERVICE else 0
    if opened is None:
        with _live_span(name, kind, attrs) as span:
            ok = False
            try:
                result = call()
                ok = True
                return result
            finally:
                end_live(span, kind, rss_before, ok)
    try:
        result = call()
    except BaseException as exc:
        close(opened, kind, rss_before, _describe(exc))
        raise
    close(opened, kind, rss_before)
    return result


async def arun_traced(
    kind: str, name: str, attrs: dict[str, Any], call: Callable[[], Awaitable[Any]], parent: Any = None
) -> Any:
    """``run_traced`` for a coroutine: the same record or live span around ``await call()``."""
    if _untraced():
        return await call()
    attrs[cv.THREAD_NAME] = threading.current_thread().name
    opened = timeline.open_record(kind, name, attrs, parent)
    rss_before = memory.rss() if kind == cv.KIND_SERVICE else 0
    if opened is None:
        with _live_span(name, kind, attrs) as span:
            ok = False
            try:
                result = await call()
                ok = True
                return result
            finally:
                end_live(span, kind, rss_before, ok)
    try:
        result = await call()
    except BaseException as exc:
        close(opened, kind, rss_before, _describe(exc))
        raise
    close(opened, kind, rss_before)
    return result


def close(opened: Any, kind: str, rss_before: int, error: tuple[str, str] | None = None) -> None:
    """Close a record: a service gets its RSS delta and outcome, a tier phase a memory snapshot."""
    attrs = opened[0].attrs
    if kind == cv.KIND_SERVICE:
        attrs[cv.MEMORY_RSS_DELTA] = memory.rss() - rss_before
        attrs[cv.SERVICE_OUTCOME] = cv.OUTCOME_OK if error is None else cv.OUTCOME_ERROR
    elif kind == cv.KIND_PHASE:
        memory.take_snapshot(f"{attrs[cv.PHASE]} done")
    timeline.close_record(opened, error)


def end_live(span: Any, kind: str, rss_before: int, ok: bool) -> None:
    """The live-span twin of ``close`` (the span itself is ended by its owner)."""
    if kind == cv.KIND_SERVICE:
        span.set_attribute(cv.MEMORY_RSS_DELTA, memory.rss() - rss_before)
        span.set_attribute(cv.SERVICE_OUTCOME, cv.OUTCOME_OK if ok else cv.OUTCOME_ERROR)


def _service_attrs(registration: Any) -> dict[str, Any]:
    tier = getattr(registration, "tier", "")
    return {
        cv.SERVICE_NAME: str(registration.name),
        cv.SERVICE_TIER: str(getattr(tier, "value", tier)),
        cv.SERVICE_DEPENDENCIES: [str(d) for d in getattr(registration, "depends_on", ())],
        cv.SERVICE_CACHE: cv.CACHE_MISS,
    }


# --- ServiceFactory and LazyLoader: through their hook protocol (service_hooks.py) ----------

#: Tier -> the phase its run is recorded as.
_TIER_PHASES = {"critical": cv.PHASE_CRITICAL, "optional": cv.PHASE_PRELOAD}


def _count_cache_hit(name: str) -> None:
    if _state.timeline is not None and not _state.ready:
        timeline.count(f"cache_hit:{name}")


class _TracingHooks(ServiceHooks):
    """Each hook runs its call as a record (before ready) or under a live span (after ready)."""

    # cache_hit: _count_cache_hit from install() until the ready moment.

    def init(self, registration: Any, call: Callable[[], Any]) -> Any:
        name = f"{cv.INIT_SPAN_PREFIX}{registration.name}"
        return run_traced(cv.KIND_SERVICE, name, _service_attrs(registration), call)

    async def ainit(self, registration: Any, call: Callable[[], Awaitable[Any]]) -> Any:
        name = f"{cv.INIT_SPAN_PREFIX}{registration.name}"
        return await arun_traced(cv.KIND_SERVICE, name, _service_attrs(registration), call)

    def tier(self, tier: Any, call: Callable[[], Any]) -> Any:
        phase = _TIER_PHASES[tier.value]
        return run_traced(cv.KIND_PHASE, f"{cv.TIER_SPAN_PREFIX}{phase}", {cv.PHASE: phase}, call)

    async def atier(self, tier: Any, call: Callable[[], Awaitable[Any]]) -> Any:
        phase = _TIER_PHASES[tier.value]
        return await arun_traced(cv.KIND_PHASE, f"{cv.TIER_SPAN_PREFIX}{phase}", {cv.PHASE: phase}, call)

    def wait(self, name: str, call: Callable[[], Any]) -> Any:
        return run_traced(cv.KIND_WAIT, f"{cv.WAIT_SPAN_PREFIX}{name}", {cv.SERVICE_NAME: str(name)}, call)

    async def await_for(self, name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        attrs = {cv.SERVICE_NAME: str(name)}
        return await arun_traced(cv.KIND_WAIT, f"{cv.WAIT_SPAN_PREFIX}{name}", attrs, call)

    def lazy_load(self, target: str, call: Callable[[], Any]) -> Any:
        attrs = {cv.LAZY_TARGET: target, cv.CODE_NAMESPACE: target.partition(":")[0]}
        return run_traced(cv.KIND_LAZY_LOAD, cv.LAZY_LOAD_SPAN, attrs, call)


_hooks = _TracingHooks()


def _at_ready(frozen: timeline.Timeline) -> None:
    """Put the cache-hit counts on the init spans, and stop counting: hits are only counted
    before ready, and after it a cache hit must not pay for a call."""
    with _lock:
        if service_hooks.current() is _hooks:
            _hooks.cache_hit = None
            service_hooks.set_hooks(_hooks)
    for record in frozen.records:
        if record.kind == cv.KIND_SERVICE:
            name = record.attrs.get(cv.SERVICE_NAME)
            hits = frozen.counters.get(f"cache_hit:{name}")
            if hits:
                record.attrs[cv.SERVICE_CACHE_HITS] = hits


# --- user-named factories and svcs ----------------------------------------------------------


def parse_factory_paths(value: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``"pkg.mod:Class.method,pkg.other:func"`` -> ``([("pkg.mod", "Class.method"), ...], problems)``."""
    paths = []
    problems = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        module, sep, attribute = item.partition(":")
        if not sep or not module or not attribute or "" in attribute.split(".") or "" in module.split("."):
            problems.append(f"{FACTORIES_ENV}: {item!r} is not 'module:attribute.path'; ignored")
            continue
        paths.append((module, attribute))
    return paths, problems


def _named_factory(module: str, attribute: str) -> Callable[..., Any]:
    path = f"{module}:{attribute}"

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if _untraced():
            return wrapped(*args, **kwargs)
        # A container's create("db"): the first string argument names the service.
        name = f"{attribute}({args[0]})" if args and isinstance(args[0], str) else attribute
        attrs = {
            cv.SERVICE_NAME: name,
            cv.SERVICE_TIER: cv.TIER_USER,
            cv.SERVICE_FACTORY: path,
            cv.SERVICE_CACHE: cv.CACHE_MISS,
        }
        call = functools.partial(wrapped, *args, **kwargs)
        if _is_coroutine_function(wrapped):
            return arun_traced(cv.KIND_SERVICE, f"{cv.INIT_SPAN_PREFIX}{name}", attrs, call)
        return run_traced(cv.KIND_SERVICE, f"{cv.INIT_SPAN_PREFIX}{name}", attrs, call)

    return wrapper


def _is_coroutine_function(fn: Any) -> bool:
    code = getattr(fn, "__code__", None)
    return code is not None and bool(code.co_flags & 0x80)


def wrap_named_factories(value: str) -> list[str]:
    """Wrap each named callable now, or when its module is first imported; returns the paths."""
    paths, problems = parse_factory_paths(value)
    for problem in problems:
        _log.warning("otel-coldstart: %s", problem)
    wrapped_paths = []
    for module, attribute in paths:

        def hook(mod: Any, module: str = module, attribute: str = attribute) -> None:
            try:
                _wrap(mod, attribute, _named_factory(module, attribute))
            except AttributeError:
                _log.warning("otel-coldstart: %s: %s has no attribute %s", FACTORIES_ENV, module, attribute)

        wrapt.register_post_import_hook(hook, module)
        wrapped_paths.append(f"{module}:{attribute}")
    return wrapped_paths


def _svcs_name(svc_type: Any) -> str:
    return getattr(svc_type, "__qualname__", None) or repr(svc_type)


def _svcs_attrs(svc_type: Any) -> dict[str, Any]:
    module = getattr(svc_type, "__module__", None)
    name = _svcs_name(svc_type)
    return {
        cv.SERVICE_NAME: name,
        cv.SERVICE_TIER: cv.TIER_SVCS,
        cv.SERVICE_FACTORY: f"{module}:{name}" if module else name,
        cv.SERVICE_CACHE: cv.CACHE_MISS,
    }


def _svcs_cached(instance: Any, svc_type: Any) -> bool:
    # svcs' public "has this container a cached instance" is ``svc_type in container``; only a
    # release without Container.__contains__ makes us read its private cache.
    if hasattr(type(instance), "__contains__"):
        return svc_type in instance
    instantiated = getattr(instance, "_instantiated", None)
    return instantiated is not None and svc_type in instantiated


def _svcs_get(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    if _untraced() or kwargs or all(_svcs_cached(instance, t) for t in args):
        return wrapped(*args, **kwargs)
    # One span per acquired type: get(A, B) is two acquisitions, each with its own factory.
    values = []
    for svc_type in args:
        if _svcs_cached(instance, svc_type):
            values.append(wrapped(svc_type))
        else:
            name = _svcs_name(svc_type)
            call = functools.partial(wrapped, svc_type)
            values.append(
                run_traced(cv.KIND_SERVICE, f"{cv.INIT_SPAN_PREFIX}{name}", _svcs_attrs(svc_type), call)
            )
    return values[0] if len(values) == 1 else values


async def _svcs_aget(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    if _untraced() or kwargs or all(_svcs_cached(instance, t) for t in args):
        return await wrapped(*args, **kwargs)
    values = []
    for svc_type in args:
        if _svcs_cached(instance, svc_type):
            values.append(await wrapped(svc_type))
        else:
            name = _svcs_name(svc_type)
            call = functools.partial(wrapped, svc_type)
            values.append(
                await arun_traced(
                    cv.KIND_SERVICE, f"{cv.INIT_SPAN_PREFIX}{name}", _svcs_attrs(svc_type), call
                )
            )
    return values[0] if len(values) == 1 else values


def _wrap_svcs(module: Any) -> None:
    _wrap(module, "Container.get", _svcs_get)
    _wrap(module, "Container.aget", _svcs_aget)


# --- installation ---------------------------------------------------------------------------

_installed = False
#: (owner, attribute) of everything wrapped, for ``uninstall()``.
_wrapped: list[tuple[Any, str, Any]] = []
_lock = threading.Lock()


def _wrap(module: Any, path: str, wrapper: Callable[..., Any]) -> None:
    if not _installed:
        return  # a post-import hook registered before uninstall(): wrapt cannot unregister it
    parent, attribute, original = wrapt.resolve_path(module, path)
    if getattr(original, "_self_wrapper", None) is wrapper:
        return  # wrapped already (install() after uninstall() registers its hooks again)
    # The raw class attribute (not what the descriptor returns), to put back on uninstall().
    raw = vars(parent).get(attribute, original) if isinstance(parent, type) else original
    wrapt.wrap_function_wrapper(module, path, wrapper)
    _wrapped.append((parent, attribute, raw))


def install(provider: Any = None) -> None:
    """Observe our factory and lazy loader (hooks), svcs and user-named factories (wrapt).

    ``provider``: the tracer provider of live (after-ready) spans; the global one by default.
    """
    global _installed, tracer_provider
    tracer_provider = provider
    with _lock:
        if _installed:
            return
        _installed = True
        _hooks.cache_hit = None if _state.ready else _count_cache_hit
        service_hooks.set_hooks(_hooks)
    wrapt.register_post_import_hook(_wrap_svcs, "svcs._core")
    timeline.on_ready(_at_ready)
    named = os.environ.get(FACTORIES_ENV, "")
    if named.strip():
        wrap_named_factories(named)


def uninstall() -> None:
    """Remove the hooks and undo the wrapping done so far. Post-import hooks stay registered
    (wrapt cannot remove them) but do nothing until ``install()`` runs again."""
    global _installed
    with _lock:
        if service_hooks.current() is _hooks:
            service_hooks.set_hooks(None)
        while _wrapped:
            parent, attribute, raw = _wrapped.pop()
            setattr(parent, attribute, raw)
        _installed = False
