"""The cold-start trace built without the OpenTelemetry SDK or API: for the trace file at exit.

A program whose cold start ends at its exit (a script, a CLI, ``python -c pass``) used to import
the SDK (and the API, typing, importlib.metadata's entry points with it) only to write its trace
file: ~0.2 s of CPU on a busy machine, longer than many such programs live. The trace file is
OTLP JSON, and ``otlp_json.py`` encodes anything shaped like a finished span, so the spans here
are small slotted objects with the attributes it reads, built by ``spans.build`` through
``LightTracer.build_api`` exactly as it builds SDK spans.

Same trace either way: ids come from the raw copy's seed in the order the SDK's tracer draws them
(``SeededIds``, which ``sdk_setup`` uses too), attributes are cleaned as the SDK cleans ours
(``None`` dropped, sequences as tuples), the resource is ``sdk_setup.fixed_resource``'s. A raw copy
whose trace file was written here and whose export was deferred is later built by the SDK (flush, a
later process) with the same trace and span ids. ``tests/test_light_trace.py`` compares both.

Span limits set through ``OTEL_*_LIMIT`` variables are the SDK's business: with any of them set,
``usable()`` says no and the SDK builds the file as before.
"""

from __future__ import annotations

import os
import time

from otel_coldstart.version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The SDK's default span limits (``opentelemetry.sdk.trace.SpanLimits``): 128 of each.
_LIMIT = 128
_SCOPE_NAME = "otel_coldstart"


def usable() -> bool:
    """Whether a light build gives the SDK's trace: no span limit is configured, and the SDK's
    version (a resource attribute) can be read without importing the SDK."""
    if any(key.startswith("OTEL_") and key.endswith("_LIMIT") for key in os.environ):
        return False
    return _sdk_version() is not None


def _sdk_version() -> str | None:
    try:  # a namespace package and one assignment: not the SDK itself
        from opentelemetry.sdk.version import __version__ as version
    except ImportError:
        return None
    return version


class SeededIds:
    """Trace and span ids for a raw copy: the root gets the ids its process derived (children
    link to them), the rest come from the copy's seed, drawn in the order a tracer draws them (a
    new trace's id, then its span id; a child's span id). Building the same raw copy twice, here or
    in another process, with the SDK or without, gives the same ids."""

    def __init__(self, seed: int | None, root_ids: Any = None) -> None:
        # random.Random's own generator, whose int seed it passes on unchanged: the same ids,
        # without random's imports (warnings, hashlib's sha512) at every exit.
        from _random import Random

        self._derived = tuple(root_ids) if root_ids else None
        self._root_pending = 0
        self._random = Random(seed)

    def trace_id(self) -> int:
        derived, self._derived = self._derived, None
        if derived is None:
            return self._random.getrandbits(128) or 1
        self._root_pending = derived[1]
        return int(derived[0])

    def span_id(self) -> int:
        if self._root_pending:
            span_id, self._root_pending = self._root_pending, 0
            return int(span_id)
        return self._random.getrandbits(64) or 1


def _clean(value: Any) -> Any:
    """An attribute value as the SDK stores it (``_clean_attribute_value``): sequences as tuples,
    mappings copied, anything else as its text."""
    if value is None or isinstance(value, (bool, int, float, bytes, str)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_clean(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items() if k}
    return str(value)


def _set(attributes: dict[str, Any], key: str, value: Any) -> None:
    """``BoundedAttributes.__setitem__`` with the default limit: a key set again moves to the end,
    and a full mapping drops its oldest key."""
    if not key or not isinstance(key, str):
        return
    attributes.pop(key, None)
    if len(attributes) >= _LIMIT:
        del attributes[next(iter(attributes))]
    attributes[key] = _clean(value)


#: Values ``_clean`` returns as they are.
_SCALARS = frozenset((type(None), bool, int, float, bytes, str))


def _attributes(attrs: Any) -> dict[str, Any]:
    if not attrs:
        return {}
    if len(attrs) <= _LIMIT:
        # ``_set`` for each item, for a fresh mapping that cannot fill up: a mapping's keys are
        # distinct, so none moves or is dropped. The exit builds every span's attributes here
        # (600 spans for pip): this is a third of the build's time, done per key through ``_set``.
        scalars = _SCALARS
        return {
            key: value if type(value) in scalars else _clean(value)
            for key, value in attrs.items()
            # ``key and isinstance(key, str)``, without the call for the usual exact str key.
            if (type(key) is str and key) or (key and isinstance(key, str))
        }
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        _set(out, key, value)
    return out


class _Code:
    """``SpanKind`` / ``StatusCode`` as ``otlp_json`` reads them: by value."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value


_INTERNAL = _Code(0)
_ERROR = _Code(2)


class Context:
    __slots__ = ("span_id", "trace_id")

    def __init__(self, trace_id: int, span_id: int) -> None:
        self.trace_id = trace_id
        self.span_id = span_id


class Status:
    __slots__ = ("description", "status_code")

    def __init__(self, status_code: _Code, description: str | None) -> None:
        self.status_code = status_code
        self.description = description


class Event:
    __slots__ = ("attributes", "name", "timestamp")

    def __init__(self, name: str, attributes: dict[str, Any], timestamp: int) -> None:
        self.name = name
        self.attributes = attributes
        self.timestamp = timestamp


class Link:
    __slots__ = ("attributes", "context")

    def __init__(self, context: Context, attributes: dict[str, Any]) -> None:
        self.context = context
        self.attributes = attributes


class Scope:
    __slots__ = ("name", "version")

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version


class Resource:
    __slots__ = ("attributes",)

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes


class LightSpan:
    """A finished span as ``otlp_json.encode`` reads it (the ``ReadableSpan`` attributes it uses)."""

    __slots__ = (
        "_tracer",
        "attributes",
        "context",
        "end_time",
        "events",
        "links",
        "name",
        "parent",
        "start_time",
        "status",
    )
    kind = _INTERNAL

    def __init__(
        self, tracer: LightTracer, name: str, context: Context, parent: Context | None, start_time: int
    ) -> None:
        self._tracer = tracer
        self.name = name
        self.context = context
        self.parent = parent
        self.start_time = start_time
        self.end_time: int | None = None
        self.attributes: dict[str, Any] = {}
        self.events: list[Event] = []
        self.links: list[Link] = []
        self.status: Status | None = None

    @property
    def resource(self) -> Resource:
        return self._tracer.resource

    @property
    def instrumentation_scope(self) -> Scope:
        return self._tracer.scope

    def get_span_context(self) -> Context:
        return self.context

    def set_attribute(self, key: str, value: Any) -> None:
        _set(self.attributes, key, value)

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        if len(self.events) >= _LIMIT:
            del self.events[0]  # the SDK keeps the newest
        self.events.append(Event(name, _attributes(attributes), timestamp or time.time_ns()))

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time
        self._tracer.finished.append(self)


class LightTracer:
    """Starts ``LightSpan``s for ``spans.build`` (its ``build_api``); keeps them in end order,
    as the SDK's span processor sees them."""

    def __init__(self, ids: SeededIds, resource_attributes: dict[str, Any]) -> None:
        self._ids = ids
        self.resource = Resource(resource_attributes)
        self.scope = Scope(_SCOPE_NAME, __version__)
        self.finished: list[LightSpan] = []
        self.build_api = self

    def root(self, name: str, start_ns: int, attrs: Any, parent_ids: Any, link_attrs: Any) -> LightSpan:
        trace_id = self._ids.trace_id()
        span = LightSpan(self, name, Context(trace_id, self._ids.span_id()), None, start_ns)
        span.attributes = _attributes(attrs)
        if parent_ids is not None:
            span.links.append(Link(Context(*parent_ids), _attributes(link_attrs)))
        return span

    def child(self, name: str, parent: LightSpan, start_ns: int, attrs: Any) -> LightSpan:
        context = Context(parent.context.trace_id, self._ids.span_id())
        span = LightSpan(self, name, context, parent.context, start_ns)
        span.attributes = _attributes(attrs)
        return span

    def set_error(self, span: LightSpan, description: str) -> None:
        span.status = Status(_ERROR, description)


def resource_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """``sdk_setup.fixed_resource(attributes).attributes``, without the SDK: its default resource
    (the ``telemetry.sdk.*`` attributes), then ours, then ``unknown_service`` if none is named."""
    merged = _attributes(
        {
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.version": _sdk_version(),
        }
    )
    merged.update(_attributes(attributes))
    if not merged.get("service.name"):
        merged["service.name"] = "unknown_service"
    return merged


def build_from_raw(raw: dict[str, Any]) -> list[LightSpan]:
    """The spans of a raw copy (``raw_copy.py``), as ``sdk_setup.build_from_raw`` makes them."""
    from otel_coldstart.deliver import raw_copy, spans

    tracer = LightTracer(
        SeededIds(raw.get("id_seed"), raw.get("root_ids")), resource_attributes(raw.get("resource") or {})
    )
    parent_ids = raw.get("parent_ids")
    spans.build(
        raw_copy.to_timeline(raw),
        tracer,  # type: ignore[arg-type]  # duck-typed: spans.build uses its build_api
        int(raw["process_start_ns"]),
        min_import_ns=int(raw.get("min_import_ns") or 0),
        extra_root_attributes=raw.get("extra_root_attributes") or None,
        parent_ids=tuple(parent_ids) if parent_ids else None,
    )
    return tracer.finished
