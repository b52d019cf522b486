"""The package's modules import each other without circles, lazy (function-level) imports included.

A circle hides which side owns what and breaks as soon as one of its imports moves to module
level. The known ones below are waiting to be broken by their owners; no new one may appear.
"""

from __future__ import annotations

import ast
from pathlib import Path

import otel_coldstart

PACKAGE = Path(otel_coldstart.__file__).parent

#: Circles that exist on purpose for now, each a frozenset of modules (see the notes of issue 15).
KNOWN: set[frozenset[str]] = set()


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (imports for annotations never run)."""
    nodes = []
    stack = [tree]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def _graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            # The package itself only re-exports lazily (PEP 562): importing it is not a dependency.
            graph[name] |= {t for t in targets if t in modules and t not in (name, "otel_coldstart")}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_no_new_import_circles() -> None:
    found = _circles(_graph())
    new = [sorted(c) for c in found if c not in KNOWN]
    assert not new, f"import circles: {new}"
    gone = [sorted(c) for c in KNOWN if c not in found]
    assert not gone, f"broken circles, remove them from KNOWN: {gone}"


def test_the_circle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _circles(graph) == [frozenset({"a", "b", "c"})]


#: What each half may import of the package besides itself: the schema and the version only.
SHARED = {"otel_coldstart.conventions", "otel_coldstart.version", "otel_coldstart.exit_codes"}

#: For each subpackage, the subpackages (and top-level modules) it may import, lazy imports included.
#: The order of a cold start: launch arms, record records, deliver persists and sends; cli drives
#: delivery (flush) and the validator; the library and the validator stand alone.
MAY_IMPORT = {
    "library": {"library"},
    "record": {"record", "library", "config"},
    "deliver": {"deliver", "record", "config"},
    "launch": {"launch", "record", "deliver", "config"},
    "validate": {"validate"},
    "cli": {"cli", "validate", "deliver", "launch", "config"},
}


def _half(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_layout_is_the_halves() -> None:
    graph = _graph()
    halves = {_half(m) for m in graph if m.count(".") >= 2}
    assert halves == set(MAY_IMPORT), f"a subpackage without rules: {sorted(halves ^ set(MAY_IMPORT))}"
    for module, imported in graph.items():
        allowed = MAY_IMPORT.get(_half(module))
        if allowed is None:
            continue  # the top-level modules: api, config, conventions, exit_codes, version
        wrong = {m for m in imported - SHARED if _half(m) not in allowed}
        assert not wrong, f"{module} imports {sorted(wrong)}"


def test_the_layout_rules_catch_a_wrong_import() -> None:
    wrong = {"otel_coldstart.record.timeline": {"otel_coldstart.deliver.spans"}}
    allowed = MAY_IMPORT[_half("otel_coldstart.record.timeline")]
    assert {_half(m) for m in wrong["otel_coldstart.record.timeline"]} - allowed == {"deliver"}
