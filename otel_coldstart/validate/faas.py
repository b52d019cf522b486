"""AWS Lambda cold starts, read back: the init a caller waits for, and the first invocation after it.

The recorder (``otel_coldstart/launch/faas_lambda.py``) puts the init type and the init duration on the
root span, and the first invocation into the cold-start trace as its first-invocation span.
Under SnapStart the root spans the process's whole life, snapshot included; the init that counts
is the restore, so targets judge that instead of the root's duration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from otel_coldstart import conventions as cv
from otel_coldstart.validate.model import Trace

INIT_TYPE = cv.LAMBDA_INIT_TYPE
INIT_DURATION = cv.LAMBDA_INIT_DURATION_NS
BEFORE_SNAPSHOT = cv.LAMBDA_BEFORE_SNAPSHOT_NS
FIRST_INVOCATION = cv.LAMBDA_FIRST_INVOCATION_SPAN
INIT_GAP = cv.LAMBDA_INIT_GAP_NS
PROACTIVE = cv.LAMBDA_PROACTIVE_INIT


@dataclass(frozen=True)
class LambdaSplit:
    init_type: str
    #: The init a caller can wait for (SnapStart: the restore), in ns.
    init_ns: int
    #: SnapStart: init that ran before the snapshot (nobody waits for it), in ns.
    before_snapshot_ns: int | None
    #: The first invocation's duration, when it is in the trace.
    first_invocation_ns: int | None
    #: End of init -> start of the first invocation.
    gap_ns: int | None
    #: Init ran ahead of demand (provisioned concurrency, proactive init): the gap is no one's wait.
    proactive: bool


def split(trace: Trace) -> LambdaSplit | None:
    """The Lambda figures of a cold-start trace, or ``None`` if it is not a Lambda cold start."""
    root = trace.root
    if root is None or INIT_TYPE not in root.attributes:
        return None
    attrs = root.attributes
    init_ns = _int(attrs.get(INIT_DURATION))
    first = next((span for span in trace.spans if span.name == FIRST_INVOCATION), None)
    gap = _int(first.attributes.get(INIT_GAP)) if first is not None else None
    return LambdaSplit(
        init_type=str(attrs.get(INIT_TYPE)),
        init_ns=root.duration_ns if init_ns is None else init_ns,
        before_snapshot_ns=_int(attrs.get(BEFORE_SNAPSHOT)),
        first_invocation_ns=first.duration_ns if first is not None else None,
        gap_ns=gap,
        proactive=bool(first.attributes.get(PROACTIVE)) if first is not None else False,
    )


def cold_start_ns(trace: Trace, default: int) -> int:
    """The cold start to judge: a Lambda trace's init (the restore under SnapStart), else ``default``."""
    found = split(trace)
    return default if found is None else found.init_ns


def describe(found: LambdaSplit) -> str:
    """One line for a report: the init / first-invocation split."""
    parts = [f"Lambda ({found.init_type}): init {found.init_ns / 1e6:.0f} ms"]
    if found.before_snapshot_ns is not None:
        parts.append(f"before the snapshot {found.before_snapshot_ns / 1e6:.0f} ms (not waited for)")
    if found.gap_ns is not None:
        note = " (initialised ahead of demand: nobody's wait)" if found.proactive else ""
        parts.append(f"then {found.gap_ns / 1e6:.0f} ms until the first invocation{note}")
    if found.first_invocation_ns is not None:
        parts.append(f"first invocation {found.first_invocation_ns / 1e6:.0f} ms")
    return ", ".join(parts)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)  # Jaeger and OTLP JSON carry 64-bit integers as strings
    return None


def as_document(trace: Trace) -> dict[str, Any] | None:
    found = split(trace)
    return None if found is None else asdict(found)


def target_rows(max_init_ms: float | None, max_first_invocation_ms: float | None) -> list[tuple[Any, ...]]:
    """Rows for ``targets.judge``: (key, label, measure(summary), limit, unit), for the targets set."""
    rows: list[tuple[Any, ...]] = []
    if max_init_ms is not None:
        rows.append(("max_lambda_init_ms", "lambda init", _measure("init_ns"), max_init_ms, "ms"))
    if max_first_invocation_ms is not None:
        rows.append(
            (
                "max_first_invocation_ms",
                "first invocation",
                _measure("first_invocation_ns"),
                max_first_invocation_ms,
                "ms",
            )
        )
    return rows


def _measure(field_name: str) -> Callable[[Any], float | None]:
    def measure(summary: Any) -> float | None:
        found = split(summary.trace)
        value = None if found is None else getattr(found, field_name)
        return None if value is None else value / 1e6

    return measure
