"""Numbers checked on the way in: a trace whose times or figures are nonsense gets no verdict.

Every reader converts its numbers through these functions, so a NaN, an infinity, a negative
time, a 400-digit timestamp or a span that ends before it starts is a ``TraceError`` (one line,
exit code 2) naming the field, never a traceback and never a "PASS" computed from garbage.

- Times are nanoseconds since the epoch in ``[0, 2**63)``: what OTLP's fixed64 and Jaeger's int64
  hold (up to the year 2262). Strings of digits are accepted (the OTLP JSON mapping writes 64-bit
  integers as strings); an integral float is accepted (some tools write numbers); nothing else.
- Integer attributes fit in int64 (OTLP ``intValue``, Jaeger ``int64``); doubles are finite.
- The recorder's sizes, counts and memory figures are never negative (``NON_NEGATIVE``).
"""

from __future__ import annotations

import math
from typing import Any

from otel_coldstart import conventions as cv
from otel_coldstart.validate.model import TraceError

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
TIME_MAX_NS = INT64_MAX

#: Attributes the validator judges on that can only be zero or more (a negative one is corrupt).
NON_NEGATIVE = frozenset(
    {
        cv.MODULE_SIZE,
        cv.BUNDLE_SIZE,
        cv.IMPORTS_COUNT,
        cv.MEMORY_RSS,
        cv.MEMORY_PEAK_RSS,
        cv.MEMORY_RSS_AT_READY,
        cv.MEMORY_USS_AFTER_READY,
        cv.MEMORY_VMS,
        cv.BOOT_DURATION_NS,
    }
)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} chars)"


def integer(value: Any, what: str, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """A JSON integer (number, digit string or integral float) within ``[low, high]``; missing is 0."""
    if type(value) is str and len(value) <= 18 and value.isascii() and value.isdigit():
        number = int(value)  # the common case: the OTLP JSON mapping writes int64 as a string
        if low <= number <= high:
            return number
    if value is None or value == "":
        return 0
    if type(value) is int:
        number = value
    elif isinstance(value, bool):
        raise TraceError(f"{what} is a boolean, expected an integer")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise TraceError(f"{what} is {value}, expected a finite integer")
        if not value.is_integer():
            raise TraceError(f"{what} is {value!r}, expected an integer")
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        # int() would accept "1_000" and, past 4,300 digits, raise an error naming a sys setting.
        if not text.lstrip("-+").isdigit():
            raise TraceError(f"{what} is not an integer: {_short(value)}")
        if len(text) > 40:
            raise TraceError(f"{what} is out of range: {len(text)} digits")
        number = int(text)
    else:
        raise TraceError(f"{what} is {type(value).__name__}, expected an integer")
    if number < low or number > high:
        raise TraceError(f"{what} is out of range: {_short(value)}")
    return number


def time_ns(value: Any, what: str) -> int:
    """A time in ns since the epoch: never negative, never beyond int64."""
    # The common case first: up to 18 ASCII digits always fit.
    if type(value) is str and len(value) <= 18 and value.isascii() and value.isdigit():
        return int(value)
    return integer(value, what, 0, TIME_MAX_NS)


def finite(value: Any, what: str) -> float:
    """A finite double (OTLP ``doubleValue`` may be a number or, per the JSON mapping, a string)."""
    if isinstance(value, bool):
        raise TraceError(f"{what} is a boolean, expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise TraceError(f"{what} is not a number: {_short(value)}") from None
    if not math.isfinite(number):
        raise TraceError(f"{what} is {number}, expected a finite number")
    return number


def check_interval(start_ns: int, end_ns: int, what: str) -> None:
    if end_ns < start_ns:
        raise TraceError(f"{what} ends before it starts (end {end_ns} < start {start_ns} ns)")
