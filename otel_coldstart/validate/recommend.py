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

from dataclasses import dataclass

from otel_coldstart import conventions as cv
from otel_coldstart.validate.analysis import ImportFigure, ServiceFigure, Summary
from otel_coldstart.validate.attribution import (
    Attribution,
    LeftOut,
    attribute,
    hotspots,
    is_application,
)
from otel_coldstart.validate.model import Span, union_ns

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
    #: The (start, end) times, epoch ns, the saving lies in: claims that share time overlap.
    intervals: tuple[tuple[int, int], ...] = ()

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
            _before_main(summary),
        )
    ]


def _before_main(summary: Summary) -> tuple[tuple[int, int], ...]:
    root = summary.trace.root
    if root is None:
        return ()
    return ((root.start_ns, root.start_ns + summary.boot_ns + summary.launcher_ns),)


def _lazy_forms(module: str) -> str:
    alias = module.rpartition(".")[2]
    return (
        f'today `{alias} = otel_coldstart.lazy_module("{module}")` in place of the import; on Python 3.15+ '
        f'(PEP 810) `lazy import {module}`, or `__lazy_modules__ = ["{module}"]` above the imports '
        "(ignored by older Pythons)"
    )


def _imported_where(figure: ImportFigure) -> str:
    if figure.top_level:
        # Parented to a phase: the main script or a function it ran; which one the trace cannot tell.
        return "imported by the program's own start-up code, outside any other import"
    return f"imported while {figure.importer} loads"


def _lazy_candidates(summary: Summary, total: int, found: Attribution) -> list[Advice]:
    advice: list[Advice] = []
    evidence = found.evidence
    for candidate in found.candidates[:5]:
        figure = candidate.figure
        saving = candidate.saving_ns
        claim = f"{_ms(saving)} ({saving / total:.0%})"
        if saving < figure.cumulative_ns:
            kept = ", ".join(candidate.kept[:3])
            claim += f" of its {_ms(figure.cumulative_ns)}: the rest is {kept}, needed anyway"
        if evidence.available:
            why = "none of its code ran before ready"
            if evidence.source == "sampling":
                why += " (as far as sampling the main thread shows)"
            what = f"{why}: defer it"
        else:
            what = "if nothing needs it before ready, defer it"
        advice.append(
            Advice(
                "lazy-import",
                figure.module,
                f"import {figure.module} costs up to {claim} before ready, {_imported_where(figure)}; "
                f"{what}: {_lazy_forms(figure.module)}.",
                saving,
                _interval(figure.span),
            )
        )
    return advice


def _interval(span: Span | None) -> tuple[tuple[int, int], ...]:
    return () if span is None else ((span.start_ns, span.end_ns),)


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
    advice: list[Advice] = []
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
                ((chain[0].start_ns, max(s.end_ns for s in chain)),),
            )
        )
    return advice


def _defer(summary: Summary) -> list[Advice]:
    advice: list[Advice] = []
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
                _interval(service.span),
            )
        )
    return advice[:5]


def _needed(summary: Summary, total: int, found: Attribution) -> list[Advice]:
    """Heavy imports the program needs before ready: say so, and where their time goes."""
    advice: list[Advice] = []
    reported: set[int] = set()
    for item in found.left_out:
        figure = item.figure
        if figure.cumulative_ns / total < DOMINANT_SHARE or is_application(figure) or figure.span is None:
            continue
        if _on_chain_of(figure.span, reported):
            continue
        reported.add(id(figure.span))
        spots = ", ".join(f"{name} {_ms(ns)}" for name, ns in hotspots(figure.span) if ns >= total * 0.01)
        advice.append(
            Advice(
                "needed-import",
                figure.module,
                f"import {figure.module} takes {_ms(figure.cumulative_ns)} "
                f"({figure.cumulative_ns / total:.0%} of the cold start, with everything it imports) "
                "but is not a lazy-load candidate: "
                f"{item.reason}." + (f" Its own time is mostly in {spots} (self time)." if spots else ""),
                None,
            )
        )
    return advice[:3]


def _on_chain_of(span: Span, reported: set[int]) -> bool:
    node = span.parent
    while node is not None:
        if id(node) in reported:
            return True
        node = node.parent
    return False


def _dominant_services(summary: Summary, total: int, already: set[str]) -> list[Advice]:
    advice: list[Advice] = []
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
                _interval(service.span),
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
            tuple(i for f in failed for i in _interval(f.span)),
        )
    ]


def recommend(summary: Summary) -> list[Advice]:
    total = summary.cold_start_ns or 1
    advice = _boot(summary, total)
    found = attribute(summary, max(LAZY_MIN_NS, int(LAZY_MIN_SHARE * total)))
    lazy = _lazy_candidates(summary, total, found)
    defer = _defer(summary)
    advice += lazy + _parallelise(summary) + defer
    advice += _dominant_services(summary, total, {a.subject for a in defer})
    advice += _failed(summary)
    advice += _needed(summary, total, found)
    return advice


def left_out(summary: Summary) -> list[LeftOut]:
    """Heavy imports that were not advised, with the reason (needed before ready, the program itself)."""
    total = summary.cold_start_ns or 1
    found = attribute(summary, max(LAZY_MIN_NS, int(LAZY_MIN_SHARE * total))).left_out
    # The application's own modules are never candidates themselves: their imports are judged.
    return [item for item in found if not is_application(item.figure)]


def claimed(advice: list[Advice]) -> tuple[int, int, bool]:
    """(sum of the savings claimed, the time they cover together, whether some overlap).

    The time covered is the union of the intervals each saving lies in, so it never exceeds the
    cold start; where two claims share time, the sum is more than can be saved together.
    """
    with_saving = [a for a in advice if a.saving_ns]
    total = sum(a.saving_ns or 0 for a in with_saving)
    intervals = [i for a in with_saving for i in a.intervals]
    covered = union_ns(intervals)
    overlapping = any(not a.intervals for a in with_saving) or covered < sum(e - s for s, e in intervals)
    return total, min(total, covered) if intervals else total, overlapping
