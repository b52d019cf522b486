"""Where deferring an import saves time, and what the program needs before ready.

A cold start's imports form a tree, and every figure on a chain of it contains the ones below:
advising ``pip._internal.cli.main`` (311 ms), the module it imports (310 ms) and the one that
imports (308 ms) claims the same time three times. Here each branch of the tree is advised at
most once, at the outermost import a user can change that nothing shows is needed, and its saving
is what leaving it out would remove: its subtree minus the parts the program uses anyway.

Evidence of need comes from the recorder (root attributes, see ``EVIDENCE_*``): the entry module
(what ran as ``__main__``) and the modules whose code ran before ready. Without it (older or
foreign traces) nothing is known to be needed, and the advice says "if nothing needs it".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from otel_coldstart import conventions as cv
from otel_coldstart.validate.analysis import ImportFigure, Summary, is_import
from otel_coldstart.validate.model import Span
from otel_coldstart.validate.paths import is_library_path

EVIDENCE_ENTRY = cv.ENTRY_MODULE
EVIDENCE_USED = cv.USED_MODULES
EVIDENCE_SOURCE = cv.USED_SOURCE
EVIDENCE_CALLERS = cv.IMPORT_CALLERS


def _path(span: Span | None) -> str:
    return str(span.attributes.get(cv.CODE_FILE_PATH, "")) if span is not None else ""


def is_application(figure: ImportFigure) -> bool:
    """The application's own modules: judged from ``code.file.path`` (neither site-packages nor the
    standard library). Without a path (builtins, foreign traces) a module counts as a library."""
    path = _path(figure.span)
    return bool(path) and not is_library_path(path)


@dataclass(frozen=True)
class Evidence:
    """What the recorder saw the program use before ready."""

    entry_module: str = ""
    used: frozenset[str] = frozenset()
    source: str = ""
    #: Top-level import -> (caller "module:function", whether that code is a library's).
    callers: dict[str, tuple[str, bool]] = field(default_factory=dict)

    @classmethod
    def of(cls, root: Span | None) -> Evidence:
        if root is None:
            return cls()
        attrs = root.attributes
        used = attrs.get(EVIDENCE_USED)
        names = frozenset(str(u) for u in used) if isinstance(used, (list, tuple)) else frozenset()
        callers: dict[str, tuple[str, bool]] = {}
        raw = attrs.get(EVIDENCE_CALLERS)
        for item in raw if isinstance(raw, (list, tuple)) else ():
            parts = str(item).split("|")
            if len(parts) == 3:
                callers.setdefault(parts[0], (parts[1], parts[2] == "library"))
        entry = str(attrs.get(EVIDENCE_ENTRY, "") or "")
        return cls(entry, names, str(attrs.get(EVIDENCE_SOURCE, "") or ""), callers)

    @property
    def available(self) -> bool:
        return bool(self.source)

    @property
    def entry_package(self) -> str:
        """The top-level package of a program run with ``-m`` (``pip``), else ``""``."""
        if not self.entry_module or self.entry_module == "__main__":
            return ""
        return self.entry_module.partition(".")[0]

    def user_of(self, module: str) -> str:
        """The module itself or a submodule of it that the program used, else ``""``."""
        if module in self.used:
            return module
        prefix = module + "."
        for name in sorted(self.used):
            if name.startswith(prefix):
                return name
        return ""


@dataclass
class Candidate:
    figure: ImportFigure
    #: Time leaving this import out removes: its subtree minus the subtrees the program uses anyway.
    saving_ns: int
    #: Modules in its subtree the program needs anyway (their time is not counted as saved).
    kept: list[str] = field(default_factory=list)


@dataclass
class LeftOut:
    figure: ImportFigure
    reason: str


@dataclass
class Attribution:
    candidates: list[Candidate]
    left_out: list[LeftOut]
    evidence: Evidence


def import_children(span: Span) -> Iterator[Span]:
    return (c for c in span.children if is_import(c))


def _shared_subtrees(span: Span, evidence: Evidence) -> list[Span]:
    """Outermost imports under ``span`` whose module the program used: loaded anyway if ``span`` is
    deferred, so their time is not saved."""
    found: list[Span] = []
    stack = list(import_children(span))
    while stack:
        node = stack.pop()
        name = str(node.attributes.get(cv.MODULE_NAME) or node.name.removeprefix(cv.IMPORT_SPAN_PREFIX))
        if name in evidence.used:
            found.append(node)
            continue
        stack.extend(import_children(node))
    return found


def attribute(summary: Summary, threshold_ns: int) -> Attribution:
    """Lazy-load candidates (at most one per chain of imports) and the heavy imports left out."""
    root = summary.trace.root
    evidence = Evidence.of(root)
    figure_of = {id(f.span): f for f in summary.imports if f.span is not None}
    candidates: list[Candidate] = []
    left_out: list[LeftOut] = []
    program = evidence.entry_package

    def controllable(figure: ImportFigure) -> bool:
        """Code whose import statements the user owns: the application's, or the program's package."""
        top = figure.module.partition(".")[0]
        return is_application(figure) or (bool(program) and top == program)

    def why_not(figure: ImportFigure) -> tuple[str, bool]:
        """(reason it is not a candidate or "", whether its own imports are worth judging)."""
        module = figure.module
        if module == evidence.entry_module or module == "__main__":
            return "the program's entry module", True
        user = evidence.user_of(module)
        if is_application(figure):
            return "the application's own module (its imports are judged one by one)", True
        if program and module.partition(".")[0] == program and not evidence.available:
            return f"part of the program itself ({program})", True
        if user:
            via = "" if user == module else f" ({user})"
            return f"needed before ready: the program ran its code{via}", controllable(figure)
        caller, library = evidence.callers.get(module, ("", False)) if figure.top_level else ("", False)
        if library and caller.partition(":")[0].partition(".")[0] not in (program, "__main__"):
            return f"imported by {caller}() inside a library, not by a line of the program", False
        return "", False

    def visit(span: Span) -> None:
        for child in sorted(import_children(span), key=lambda c: c.duration_ns, reverse=True):
            figure = figure_of.get(id(child))
            if figure is None or figure.under or figure.failed or child.duration_ns < threshold_ns:
                continue
            reason, descend = why_not(figure)
            if reason:
                left_out.append(LeftOut(figure, reason))
                if descend:
                    visit(child)
                continue
            shared = _shared_subtrees(child, evidence)
            saving = child.duration_ns - sum(s.duration_ns for s in shared)
            if saving >= threshold_ns:
                kept = [str(s.attributes.get(cv.MODULE_NAME) or s.name) for s in shared]
                candidates.append(Candidate(figure, saving, kept))
            else:
                left_out.append(LeftOut(figure, "most of its time is in modules the program needs anyway"))

    if root is not None:
        for phase in root.children:
            if phase.attributes.get(cv.PHASE) == cv.PHASE_MAIN or phase.name == cv.MAIN_SPAN:
                visit(phase)
    candidates.sort(key=lambda c: c.saving_ns, reverse=True)
    return Attribution(candidates, left_out, evidence)


def hotspots(span: Span, n: int = 3) -> list[tuple[str, int]]:
    """The imports with the largest self time in a subtree: where its time actually goes."""
    found = []
    for node in span.walk():
        if is_import(node):
            found.append((str(node.attributes.get(cv.MODULE_NAME) or node.name), node.self_ns))
    return sorted(found, key=lambda item: item[1], reverse=True)[:n]
