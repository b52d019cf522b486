"""Recommendations that name the thing to change, derived from the span tree."""

from __future__ import annotations

from otel_coldstart.validate.analysis import Summary

#: An import or service taking at least this share of the cold start "dominates" it.
DOMINANT_SHARE = 0.25
#: Boot (interpreter + launcher before our hook) above this share deserves its own advice.
BOOT_SHARE = 0.5
#: Failed imports (ImportError fallbacks) worth mentioning once they cost this much together.
FAILED_IMPORTS_NS = 5_000_000


def recommend(summary: Summary) -> list[str]:
    advice: list[str] = []
    total = summary.cold_start_ns or 1
    if summary.boot_ns / total >= BOOT_SHARE:
        advice.append(
            f"{summary.boot_ns / total:.0%} of the cold start ({summary.boot_ns / 1e6:.0f} ms) passes before "
            "the application's first import: interpreter start-up, site-packages and the launcher. "
            "Fewer .pth files and site-packages entries, `python -X frozen_modules=on`, or the "
            "programmatic otel_coldstart.start() instead of opentelemetry-instrument shorten it."
        )
    for figure in summary.slowest_imports(3, by="cumulative"):
        if figure.cumulative_ns / total < DOMINANT_SHARE:
            break
        importer = figure.path[-2].removeprefix("import ") if len(figure.path) >= 2 else "?"
        advice.append(
            f"import {figure.module} takes {figure.cumulative_ns / 1e6:.0f} ms "
            f"({figure.cumulative_ns / total:.0%} of the cold start), imported by {importer}: if it is not "
            "needed before ready, load it lazily (otel_coldstart.lazy_module) at first use."
        )
    for service in sorted(summary.services, key=lambda s: s.duration_ns, reverse=True)[:3]:
        if service.duration_ns / total < DOMINANT_SHARE:
            break
        advice.append(
            f"service {service.name} ({service.tier or 'no tier'}) takes {service.duration_ns / 1e6:.0f} ms "
            f"({service.duration_ns / total:.0%} of the cold start): make it optional (preloaded in the "
            "background) or essential (on demand) unless the first request needs it."
        )
    failed = [
        f for f in summary.imports if f.failed and not (len(f.path) >= 2 and f.path[-2].startswith("import "))
    ]
    failed_ns = sum(f.cumulative_ns for f in failed)
    if failed_ns >= FAILED_IMPORTS_NS:
        names = ", ".join(sorted({f.module for f in failed})[:5])
        advice.append(
            f"{len(failed)} failed import(s) cost {failed_ns / 1e6:.0f} ms ({names}): each failure searches "
            "all of sys.path; drop fallbacks that never succeed in this environment."
        )
    return advice
