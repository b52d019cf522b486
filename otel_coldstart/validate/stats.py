"""Statistics over many cold starts: the value a target is judged on, and the distribution shown.

Default statistic: **p50** (the median). With N cold starts from a fleet or a CI matrix, the median
is the one statistic that a single noisy run can neither fail nor pass on its own, which is what a
build gate needs. ``p95`` describes the tail but with fewer than ~20 runs it is interpolated between
the two largest values, i.e. it is nearly ``max``: choose it (or ``max``) for tail budgets and feed
it enough runs. With one trace every statistic is that trace's value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_STATISTIC = "p50"
#: The percentiles a target can be judged on: a typo such as ``p42`` or ``p999`` is an error, not a
#: silently judged statistic nobody meant.
PERCENTILES = ("p50", "p75", "p90", "p95", "p99", "p99.9")


class StatisticError(ValueError):
    """An unknown statistic name."""


def check_statistic(name: str) -> str:
    """Normalise and validate a statistic name: ``p50``, ``p95``, ``p99``, ``max``, ``min``, ``mean``..."""
    text = str(name).strip().lower()
    if text in {"max", "min", "mean", "median"}:
        return "p50" if text == "median" else text
    if text in PERCENTILES:
        return text
    raise StatisticError(f"unknown statistic {name!r}: use {', '.join(PERCENTILES)}, max, min or mean")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), ``q`` in [0, 100]."""
    if not values:
        raise ValueError("percentile of no values")
    return _percentile_sorted(sorted(values), q)


def _percentile_sorted(ordered: Sequence[float], q: float) -> float:
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def compute(values: Sequence[float], statistic: str) -> float:
    statistic = check_statistic(statistic)
    if statistic == "max":
        return float(max(values))
    if statistic == "min":
        return float(min(values))
    if statistic == "mean":
        return float(sum(values) / len(values))
    return percentile(values, float(statistic[1:]))


def compute_sorted(ordered: Sequence[float], statistic: str) -> float:
    """``compute`` over values already sorted ascending, without sorting them again: a running
    statistic over many values, asked after each new one."""
    statistic = check_statistic(statistic)
    if not ordered:
        raise ValueError("statistic of no values")
    if statistic == "max":
        return float(ordered[-1])
    if statistic == "min":
        return float(ordered[0])
    if statistic == "mean":
        return float(sum(ordered) / len(ordered))
    return _percentile_sorted(ordered, float(statistic[1:]))


@dataclass(frozen=True)
class Distribution:
    n: int
    min: float
    p50: float
    p95: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        return cls(
            n=len(values),
            min=float(min(values)),
            p50=percentile(values, 50),
            p95=percentile(values, 95),
            max=float(max(values)),
            mean=float(sum(values) / len(values)),
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "n": self.n,
            "min": self.min,
            "p50": self.p50,
            "p95": self.p95,
            "max": self.max,
            "mean": self.mean,
        }


_BARS = " ▁▂▃▄▅▆▇█"


def histogram(values: Sequence[float], bins: int = 10) -> list[int]:
    if not values:
        return []
    low, high = min(values), max(values)
    if high == low:
        return [len(values)] + [0] * (bins - 1)
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int((value - low) / (high - low) * bins))] += 1
    return counts


def sparkline(values: Sequence[float], bins: int = 10, ascii_only: bool = False) -> str:
    """A one-line histogram (low values left)."""
    counts = histogram(values, bins)
    if not counts:
        return ""
    top = max(counts)
    chars = " .:-=+*#%@" if ascii_only else _BARS
    return "".join(chars[0 if c == 0 else max(1, round(c / top * (len(chars) - 1)))] for c in counts)
