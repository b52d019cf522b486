"""Service and lazy-load spans, added from outside with wrapt (``services.py`` knows nothing of it).

Before the ready moment each wrapped call appends a timeline record (turned into a span at
ready, like imports); after it, the same call runs under a live span of the global tracer.

Wrapped:
- ``ServiceFactory._run_factory`` / ``_arun_factory``: one span per service init (a cache miss);
- ``ServiceFactory.initialize_critical`` / ``ainitialize_critical`` / ``_preload_worker``: the tier
  phases, parents of the inits they run on pool threads or tasks;
- ``ServiceFactory._wait_for``: waiting for another thread's init, visible as its own span;
- ``ServiceFactory.get`` / ``aget``: cache hits are counted onto the service's init span;
- ``LazyLoader._load_target``: ``coldstart.lazy_load`` spans, with the imports they trigger;
- user-named factories (``OTEL_PYTHON_COLDSTART_SERVICE_FACTORIES``) and ``svcs`` containers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from typing import Any

import wrapt

from otel_coldstart import memory, timeline
from otel_coldstart.imports import _describe

TRACER_NAME = "otel_coldstart.services"
FACTORIES_ENV = "OTEL_PYTHON_COLDSTART_SERVICE_FACTORIES"
_PHASE_ATTR = "_coldstart_phase_record"


def _live_span(name: str, kind: str, attrs: dict[str, Any]) -> Any:
    from opentelemetry import trace

    return trace.get_tracer(TRACER_NAME).start_as_current_span(
        name, attributes={"coldstart.kind": kind, **attrs}
    )


def run_traced(
    kind: str, name: str, attrs: dict[str, Any], call: Callable[[], Any], parent: Any = None
) -> Any:
    """Run ``call()`` as a record (before ready) or under a live span (after ready).

    Service inits also carry their RSS delta (process-wide: in a parallel tier it includes what
    concurrent inits allocated meanwhile).
    """
    opened = timeline.open_record(kind, name, attrs, parent)
    rss_before = memory.rss() if kind == "service" else 0
    if opened is None:
        if timeline.state.timeline is None and not timeline.state.ready:
            return call()
        with _live_span(name, kind, attrs) as span:
            try:
                return call()
            finally:
                if kind == "service":
                    span.set_attribute("coldstart.memory.rss_delta", memory.rss() - rss_before)
    try:
        result = call()
    except BaseException as exc:
        _close(opened, kind, rss_before, _describe(exc))
        raise
    _close(opened, kind, rss_before)
    return result


def _close(opened: Any, kind: str, rss_before: int, error: tuple[str, str] | None = None) -> None:
    if kind == "service":
        opened[0][timeline.ATTRS]["coldstart.memory.rss_delta"] = memory.rss() - rss_before
    elif kind == "phase":
        memory.take_snapshot(f"{opened[0][timeline.ATTRS]['coldstart.phase']} done")
    timeline.close_record(opened, error)


async def arun_traced(
    kind: str, name: str, attrs: dict[str, Any], call: Callable[[], Awaitable[Any]], parent: Any = None
) -> Any:
    opened = timeline.open_record(kind, name, attrs, parent)
    rss_before = memory.rss() if kind == "service" else 0
    if opened is None:
        if timeline.state.timeline is None and not timeline.state.ready:
            return await call()
        with _live_span(name, kind, attrs):
            return await call()
    try:
        result = await call()
    except BaseException as exc:
        _close(opened, kind, rss_before, _describe(exc))
        raise
    _close(opened, kind, rss_before)
    return result


def _service_attrs(registration: Any) -> dict[str, Any]:
    tier = getattr(registration, "tier", "")
    return {
        "coldstart.service.name": str(registration.name),
        "coldstart.service.tier": str(getattr(tier, "value", tier)),
        "coldstart.service.dependencies": [str(d) for d in getattr(registration, "depends_on", ())],
        "coldstart.service.cache": "miss",
    }


def _init_name(registration: Any) -> str:
    return f"init {registration.name}"


# --- ServiceFactory -------------------------------------------------------------------------


def _run_factory(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    registration = args[0] if args else kwargs["registration"]
    return run_traced(
        "service",
        _init_name(registration),
        _service_attrs(registration),
        functools.partial(wrapped, *args, **kwargs),
        getattr(instance, _PHASE_ATTR, None),
    )


def _arun_factory(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Awaitable[Any]:
    registration = args[0] if args else kwargs["registration"]
    return arun_traced(
        "service",
        _init_name(registration),
        _service_attrs(registration),
        functools.partial(wrapped, *args, **kwargs),
        getattr(instance, _PHASE_ATTR, None),
    )


def _run_phase(instance: Any, tier: str, call: Callable[[], Any], parent: Any = None) -> Any:
    """A tier phase; the inits it hands to pool threads find it through the instance."""
    previous = getattr(instance, _PHASE_ATTR, None)

    def body() -> Any:
        setattr(instance, _PHASE_ATTR, timeline.current_record.get())
        try:
            return call()
        finally:
            setattr(instance, _PHASE_ATTR, previous)

    return run_traced("phase", f"coldstart.tier {tier}", {"coldstart.phase": tier}, body, parent)


async def _arun_phase(instance: Any, tier: str, call: Callable[[], Awaitable[Any]]) -> Any:
    previous = getattr(instance, _PHASE_ATTR, None)

    async def body() -> Any:
        setattr(instance, _PHASE_ATTR, timeline.current_record.get())
        try:
            return await call()
        finally:
            setattr(instance, _PHASE_ATTR, previous)

    return await arun_traced("phase", f"coldstart.tier {tier}", {"coldstart.phase": tier}, body)


def _initialize_critical(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    return _run_phase(instance, "critical", functools.partial(wrapped, *args, **kwargs))


def _ainitialize_critical(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    return _arun_phase(instance, "critical", functools.partial(wrapped, *args, **kwargs))


def _preload_optional(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    # The background worker starts on another thread with an empty context: hand it our parent.
    instance._coldstart_preload_parent = timeline.current_record.get()
    return wrapped(*args, **kwargs)


def _preload_worker(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    parent = getattr(instance, "_coldstart_preload_parent", None)
    return _run_phase(instance, "optional preload", functools.partial(wrapped, *args, **kwargs), parent)


def _wait_for(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    name = args[0] if args else next(iter(kwargs.values()))
    return run_traced(
        "wait",
        f"wait {name}",
        {"coldstart.service.name": str(name)},
        functools.partial(wrapped, *args, **kwargs),
        getattr(instance, _PHASE_ATTR, None),
    )


def _count_cache_hit(instance: Any, name: Any) -> None:
    if timeline.is_recording() and instance.is_ready(name):
        timeline.count(f"cache_hit:{name}")


def _get(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    if args:
        _count_cache_hit(instance, args[0])
    return wrapped(*args, **kwargs)


def _apply_cache_hits(frozen: timeline.Timeline) -> None:
    for record in frozen.records:
        if record[timeline.KIND] == "service":
            name = record[timeline.ATTRS].get("coldstart.service.name")
            hits = frozen.counters.get(f"cache_hit:{name}")
            if hits:
                record[timeline.ATTRS]["coldstart.service.cache_hits"] = hits


# --- LazyLoader -----------------------------------------------------------------------------


def _load_target(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    target = args[0] if args else kwargs["target"]
    return run_traced(
        "lazy_load",
        "coldstart.lazy_load",
        {"coldstart.lazy.target": str(target)},
        functools.partial(wrapped, *args, **kwargs),
    )


# --- user-named factories and svcs ----------------------------------------------------------


def parse_factory_paths(value: str) -> list[tuple[str, str]]:
    """``"pkg.mod:Class.method,pkg.other:func"`` -> ``[("pkg.mod", "Class.method"), ...]``."""
    paths = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        module, sep, attribute = item.partition(":")
        if not sep or not module or not attribute:
            raise ValueError(f"{FACTORIES_ENV}: {item!r} is not 'module:attribute.path'")
        paths.append((module, attribute))
    return paths


def _named_factory(path: str) -> Callable[..., Any]:
    attrs = {
        "coldstart.service.name": path,
        "coldstart.service.tier": "user",
        "coldstart.service.cache": "miss",
    }

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        return run_traced("service", f"init {path}", attrs, functools.partial(wrapped, *args, **kwargs))

    return wrapper


def wrap_named_factories(value: str) -> list[str]:
    """Wrap each named callable now or when its module is first imported; returns the paths."""
    wrapped_paths = []
    for module, attribute in parse_factory_paths(value):
        path = f"{module}:{attribute}"

        def hook(mod: Any, attribute: str = attribute, path: str = path) -> None:
            wrapt.wrap_function_wrapper(mod, attribute, _named_factory(path))

        wrapt.register_post_import_hook(hook, module)
        wrapped_paths.append(path)
    return wrapped_paths


def _svcs_type_name(svc_type: Any) -> str:
    return getattr(svc_type, "__qualname__", None) or repr(svc_type)


def _svcs_get(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    instantiated = getattr(instance, "_instantiated", None)
    missing = [t for t in args if instantiated is None or t not in instantiated]
    if not missing:
        return wrapped(*args, **kwargs)
    names = ", ".join(_svcs_type_name(t) for t in missing)
    attrs = {
        "coldstart.service.name": names,
        "coldstart.service.tier": "svcs",
        "coldstart.service.cache": "miss",
    }
    return run_traced("service", f"init {names}", attrs, functools.partial(wrapped, *args, **kwargs))


def _svcs_aget(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Awaitable[Any]:
    instantiated = getattr(instance, "_instantiated", None)
    missing = [t for t in args if instantiated is None or t not in instantiated]
    if not missing:
        return wrapped(*args, **kwargs)
    names = ", ".join(_svcs_type_name(t) for t in missing)
    attrs = {
        "coldstart.service.name": names,
        "coldstart.service.tier": "svcs",
        "coldstart.service.cache": "miss",
    }
    return arun_traced("service", f"init {names}", attrs, functools.partial(wrapped, *args, **kwargs))


def _wrap_svcs(module: Any) -> None:
    wrapt.wrap_function_wrapper(module, "Container.get", _svcs_get)
    wrapt.wrap_function_wrapper(module, "Container.aget", _svcs_aget)


# --- installation ---------------------------------------------------------------------------

_installed = False


def _wrap_services(module: Any) -> None:
    factory = "ServiceFactory."
    wrapt.wrap_function_wrapper(module, factory + "_run_factory", _run_factory)
    wrapt.wrap_function_wrapper(module, factory + "_arun_factory", _arun_factory)
    wrapt.wrap_function_wrapper(module, factory + "initialize_critical", _initialize_critical)
    wrapt.wrap_function_wrapper(module, factory + "ainitialize_critical", _ainitialize_critical)
    wrapt.wrap_function_wrapper(module, factory + "preload_optional", _preload_optional)
    wrapt.wrap_function_wrapper(module, factory + "_preload_worker", _preload_worker)
    wrapt.wrap_function_wrapper(module, factory + "_wait_for", _wait_for)
    wrapt.wrap_function_wrapper(module, factory + "get", _get)


def _wrap_lazy(module: Any) -> None:
    wrapt.wrap_function_wrapper(module, "LazyLoader._load_target", _load_target)


def install() -> None:
    """Wrap our factory, lazy loader, svcs and user-named factories, each when first imported."""
    global _installed
    if _installed:
        return
    _installed = True
    wrapt.register_post_import_hook(_wrap_services, "otel_coldstart.services")
    wrapt.register_post_import_hook(_wrap_lazy, "otel_coldstart.lazy")
    wrapt.register_post_import_hook(_wrap_svcs, "svcs._core")
    timeline.on_ready(_apply_cache_hits)
    named = os.environ.get(FACTORIES_ENV, "")
    if named.strip():
        wrap_named_factories(named)
