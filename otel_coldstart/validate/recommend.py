"""Recommendations that name the thing to change, derived from the span tree.

Each rule reads evidence the trace carries, and says what it saw:

- ``boot``: what ``opentelemetry-instrument`` costs (its wrapper span and its work in the app) and
  the launch that skips it; else the time before the app's first import and its share;
- ``lazy-import``: a heavy import on the plain start-up path (not inside a service init, a lazy
  load or the background preload) - nothing in the trace shows it is needed before ready;
- ``parallelise``: critical services that ran one after another without depending on each other;
- ``defer``: optional or essential services initialised on the critical path before ready;
- ``dominant-import`` / ``dominant-service``: one thing takes a large share of the cold start;
- ``failed-imports``: import fallbacks that never succeed but search all of ``sys.path``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from otel_coldstart import conventions as cv
from otel_coldstart.validate.analysis import ImportFigure, ServiceFigure, Summary

#: An import or service taking at least this share of the cold start "dominates" it.
DOMINANT_SHARE = 0.25
#: Time before the hook above this share deserves its own advice.
BOOT_SHARE = 0.3
#: What opentelemetry-instrument itself costs, above this share, deserves its own advice.
LAUNCHER_SHARE = 0.1
#: A lazy-load candidate costs at least this much and this share of the cold start.
LAZY_MIN_NS = 10_000_000
LAZY_MIN_SHARE = 0.03
#: A parallelisation or deferral worth naming saves at least this much.
SAVING_MIN_NS = 5_000_000
#: Failed imports (ImportError fallbacks) worth mentioning once they cost this much together.
FAILED_IMPORTS_NS = 5_000_000


@dataclass(frozen=True)
class Advice:
    kind: str
    subject: str
    message: str
    #: What the change would save at most, when the trace tells (ns).
    saving_ns: int | None = None

    def __str__(self) -> str:
        return self.message


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.0f} ms"


def _stock_launcher_cost(summary: Summary) -> tuple[int, int] | None:
    """Under ``opentelemetry-instrument`` with our start-up hook: the wrapper process and the
    launcher's work in the app (all but our own hook), which the zero-tax launch skips."""
    spans = summary.trace.spans
    wrapper = sum(
        s.duration_ns
        for s in spans
        if s.name == cv.WRAPPER_SPAN and s.attributes.get(cv.LAUNCHER_WRAPPER) == cv.WRAPPER_STOCK
    )
    if not wrapper:
        return None
    ours = sum(s.duration_ns for s in spans if s.name == cv.LAUNCHER_ACTIVATE_SPAN)
    return wrapper, max(0, summary.launcher_ns - ours)


def _boot(summary: Summary, total: int) -> list[Advice]:
    stock = _stock_launcher_cost(summary)
    if stock is not None and sum(stock) / total >= LAUNCHER_SHARE:
        wrapper, work = stock
        return [
            Advice(
                "boot",
                "opentelemetry-instrument",
                f"opentelemetry-instrument costs {_ms(wrapper + work)} of this cold start "
                f"({(wrapper + work) / total:.0%}): its wrapper process {_ms(wrapper)} before the exec, "
                f"then {_ms(work)} in the app (the auto-instrumentation import, entry-point scans, distro, "
                "configurator, instrumentors). Start the app with OTEL_PYTHON_COLDSTART_AUTO=1 (no wrapper "
                "process) or `otel-coldstart run`, which trace the same cold start without that work: "
                f"saves up to {_ms(wrapper + work)}.",
                wrapper + work,
            )
        ]
    before = summary.boot_ns + summary.launcher_ns
    if before / total < BOOT_SHARE:
        return []
    split = f"boot {_ms(summary.boot_ns)}"
    if summary.launcher_ns:
        split += f", launcher {_ms(summary.launcher_ns)}"
    root = summary.trace.root
    launcher = root is not None and root.attributes.get(cv.ORIGIN) == cv.ORIGIN_LAUNCHER
    fix = (
        " Launching with OTEL_PYTHON_COLDSTART_AUTO=1 or `otel-coldstart run` instead of "
        "opentelemetry-instrument drops the launcher's share."
        if launcher
        else ""
    )
    return [
        Advice(
            "boot",
            "interpreter and launcher",
            f"{before / total:.0%} of the cold start ({_ms(before)}: {split}) passes before the "
            "application's first import: interpreter start-up, site-packages and the launcher. Fewer "
            ".pth files and site-packages entries and `python -X frozen_modules=on` shorten the "
            f"interpreter's part.{fix}",
            before,
        )
    ]


_LIBRARY_MARKERS = ("site-packages", "dist-packages")


def _is_application(figure: ImportFigure) -> bool:
    """The application's own modules: advise their heavy imports, not the modules themselves.

    Judged from ``code.file.path``: neither site-packages nor the standard library's
    ``lib/pythonX.Y`` directory. Without a path (builtins, foreign traces) it counts as a library.
    """
    span = figure.span
    path = str(span.attributes.get(cv.CODE_FILE_PATH, "")) if span is not None else ""
    if not path:
        return False
    normalised = path.replace("\\", "/")
    if any(marker in normalised for marker in _LIBRARY_MARKERS):
        return False
    return re.search(r"/lib/python\d", normalised, re.IGNORECASE) is None and "/Lib/" not in path


def _lazy_candidates(summary: Summary, total: int) -> list[Advice]:
    threshold = max(LAZY_MIN_NS, LAZY_MIN_SHARE * total)
    advice: list[Advice] = []
    seen: set[str] = set()
    # Outermost heavy imports first: advising `pandas` is useful, advising `pandas.core.frame` is not.
    for figure in sorted(summary.imports, key=lambda f: f.cumulative_ns, reverse=True):
        if figure.cumulative_ns < threshold or len(advice) >= 5:
            break
        if figure.under or figure.failed or figure.module.partition(".")[0] in seen:
            continue
        if _is_application(figure):
            continue
        if not figure.top_level and figure.importer.partition(".")[0] == figure.module.partition(".")[0]:
            continue  # a submodule its own package imports: the package is the thing to defer
        seen.add(figure.module.partition(".")[0])
        advice.append(
            Advice(
                "lazy-import",
                figure.module,
                f"import {figure.module} costs {_ms(figure.cumulative_ns)} "
                f"({figure.cumulative_ns / total:.0%}) on the critical path, imported by {figure.importer} "
                "at module level, outside any service init: if nothing needs it before ready, load it "
                "lazily (otel_coldstart.lazy_module) at first use.",
                figure.cumulative_ns,
            )
        )
    return advice


def _depends(a: ServiceFigure, b: ServiceFigure, graph: dict[str, tuple[str, ...]]) -> bool:
    """Does ``a`` depend on ``b``, directly or through others?"""
    stack, seen = list(graph.get(a.name, ())), set()
    while stack:
        name = stack.pop()
        if name == b.name:
            return True
        if name not in seen:
            seen.add(name)
            stack.extend(graph.get(name, ()))
    return False


#: How much earlier than its start a service must have been free for the pool to have held it back.
SERIAL_SLACK_NS = 1_000_000


def _parallelise(summary: Summary) -> list[Advice]:
    critical = sorted(
        (s for s in summary.services if s.tier == cv.TIER_CRITICAL and not s.failed), key=lambda s: s.start_ns
    )
    if len(critical) < 2:
        return []
    graph = {s.name: s.dependencies for s in summary.services}
    ended = {s.name: s.end_ns for s in summary.services}
    tier_start = critical[0].start_ns

    def free_at(service: ServiceFigure) -> int:
        # The earliest moment the service could have started: its own dependencies done.
        return max([tier_start, *(ended[d] for d in service.dependencies if d in ended)])

    # Greedy chains of services that ran strictly one after another, are mutually independent, and
    # where the later one was free to start before the earlier one ended (one that waited for its
    # own dependency was not serialised by the pool, and parallelism would not help it).
    chains: list[list[ServiceFigure]] = []
    for service in critical:
        for chain in chains:
            last = chain[-1]
            if (
                service.start_ns >= last.end_ns
                and free_at(service) < last.end_ns - SERIAL_SLACK_NS
                and not any(
                    _depends(service, other, graph) or _depends(other, service, graph) for other in chain
                )
            ):
                chain.append(service)
                break
        else:
            chains.append([service])
    advice = []
    for chain in chains:
        if len(chain) < 2:
            continue
        total = sum(s.duration_ns for s in chain)
        saving = total - max(s.duration_ns for s in chain)
        if saving < SAVING_MIN_NS:
            continue
        names = ", ".join(s.name for s in chain)
        advice.append(
            Advice(
                "parallelise",
                names,
                f"critical services {names} ran one after another ({_ms(total)} together) but none "
                f"depends on another: initialise them in parallel (the critical tier's pool) to save up to "
                f"{_ms(saving)}.",
                saving,
            )
        )
    return advice


def _defer(summary: Summary) -> list[Advice]:
    advice = []
    for service in sorted(summary.services, key=lambda s: s.duration_ns, reverse=True):
        if (
            service.tier not in (cv.TIER_OPTIONAL, cv.TIER_ESSENTIAL)
            or service.in_preload
            or service.threaded
        ):
            continue
        if service.duration_ns < SAVING_MIN_NS:
            continue
        how = (
            "initialise it on demand (first get) after ready"
            if service.tier == cv.TIER_ESSENTIAL
            else "let the background preload initialise it after ready"
        )
        advice.append(
            Advice(
                "defer",
                service.name,
                f"{service.tier} service {service.name} was initialised before ready on the start-up path "
                f"({_ms(service.duration_ns)}): {how}.",
                service.duration_ns,
            )
        )
    return advice[:5]


def _dominant(summary: Summary, total: int, already: set[str]) -> list[Advice]:
    advice = []
    figures: list[ImportFigure] = summary.slowest_imports(3, by="cumulative")
    for figure in figures:
        if figure.cumulative_ns / total < DOMINANT_SHARE:
            break
        if figure.module in already:
            continue
        if _is_application(figure) and figure.self_ns / total < DOMINANT_SHARE:
            continue  # the application's own package: its heavy imports are advised one by one
        advice.append(
            Advice(
                "dominant-import",
                figure.module,
                f"import {figure.module} alone takes {_ms(figure.cumulative_ns)} "
                f"({figure.cumulative_ns / total:.0%} of the cold start), imported by {figure.importer}"
                + (f" inside a {figure.under.replace('_', ' ')}" if figure.under else "")
                + ": load it lazily at first use, or find what pulls it in.",
                figure.cumulative_ns,
            )
        )
    for service in sorted(summary.services, key=lambda s: s.duration_ns, reverse=True)[:3]:
        if service.duration_ns / total < DOMINANT_SHARE:
            break
        if service.name in already:
            continue
        advice.append(
            Advice(
                "dominant-service",
                service.name,
                f"service {service.name} ({service.tier or 'no tier'}) takes {_ms(service.duration_ns)} "
                f"({service.duration_ns / total:.0%} of the cold start): make it optional (preloaded in the "
                "background) or essential (on demand) unless the first request needs it, or make its init "
                "cheaper.",
                service.duration_ns,
            )
        )
    return advice


def _failed(summary: Summary) -> list[Advice]:
    failed = [f for f in summary.imports if f.failed and f.top_level]
    failed_ns = sum(f.cumulative_ns for f in failed)
    if failed_ns < FAILED_IMPORTS_NS:
        return []
    names = ", ".join(sorted({f.module for f in failed})[:5])
    return [
        Advice(
            "failed-imports",
            names,
            f"{len(failed)} failed import(s) cost {_ms(failed_ns)} ({names}): each failure searches all of "
            "sys.path; drop fallbacks that never succeed in this environment.",
            failed_ns,
        )
    ]


def recommend(summary: Summary) -> list[Advice]:
    total = summary.cold_start_ns or 1
    advice = _boot(summary, total)
    lazy = _lazy_candidates(summary, total)
    defer = _defer(summary)
    advice += lazy + _parallelise(summary) + defer
    already = {a.subject for a in lazy + defer}
    advice += _dominant(summary, total, already)
    advice += _failed(summary)
    return advice
