"""One module spells the trace's schema: the recorder and the validator agree by construction.

Reads the package's source (every module but ``conventions.py``) and fails on any string literal
that is one of our span names or ``coldstart.*`` attribute keys, or an f-string that builds a span
name from one of our prefixes (``f"init {name}"``): those must come from ``conventions``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import otel_coldstart
from otel_coldstart import conventions as cv

PACKAGE = Path(otel_coldstart.__file__).parent
SPAN_PREFIXES = (
    cv.IMPORT_SPAN_PREFIX,
    cv.INIT_SPAN_PREFIX,
    cv.WAIT_SPAN_PREFIX,
    cv.TIER_SPAN_PREFIX,
)


def _schema_strings() -> set[str]:
    return {
        value
        for name, value in vars(cv).items()
        if name.isupper() and isinstance(value, str) and value.startswith(cv.ROOT_SPAN)
    }


def _offences(tree: ast.AST, schema: set[str]) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text in schema or (text.startswith("coldstart.") and " " not in text.strip()):
                found.append((node.lineno, repr(text)))
        elif isinstance(node, ast.JoinedStr) and len(node.values) == 2:
            # f"init {name}": exactly a prefix and one value, the shape of a span name (a message
            # such as f"import {x} costs ..." has more parts and is fine).
            head, tail = node.values
            if (
                isinstance(head, ast.Constant)
                and head.value in SPAN_PREFIXES
                and isinstance(tail, ast.FormattedValue)
            ):
                found.append((node.lineno, f"f{head.value!r}..."))
    return found


def test_only_conventions_spells_the_schema() -> None:
    schema = _schema_strings()
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "conventions.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, text in _offences(tree, schema):
            offences.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text}")
    assert not offences, "use otel_coldstart.conventions instead of:\n" + "\n".join(offences)


def test_the_check_catches_what_it_is_for() -> None:
    # The guard itself: a key, a span name and a built span name are all caught; docstrings that
    # mention names in prose and messages that start with a prefix are not.
    source = (
        '"""Writes coldstart.kind on each span."""\n'
        'a = {"coldstart.kind": "import"}\n'
        'b = "coldstart.boot"\n'
        'c = f"init {name}"\n'
        'd = f"import {module} costs {ms}"\n'
        'e = "coldstart"\n'
    )
    lines = [line for line, _ in _offences(ast.parse(source), _schema_strings())]
    assert sorted(lines) == [2, 3, 4, 6]


def test_every_constant_has_a_meaning() -> None:
    # The one-line meaning is a "#:" comment right above the constant (Sphinx reads it too).
    source = (PACKAGE / "conventions.py").read_text(encoding="utf-8").splitlines()
    names = [n for n, v in vars(cv).items() if n.isupper() and isinstance(v, (str, tuple))]
    undocumented = []
    for name in names:
        index = next(i for i, line in enumerate(source) if line.startswith(f"{name} = "))
        if not source[index - 1].startswith("#:"):
            undocumented.append(name)
    assert not undocumented, undocumented


def test_keys_are_unique_within_their_group() -> None:
    # Two constants with one value would let writer and reader drift apart under two names; the
    # only deliberate sharing is between a span attribute and the metric of the same figure, and
    # between tier names and phase names of the same tier.
    seen: dict[str, str] = {}
    clashes = []
    for name, value in vars(cv).items():
        if not name.isupper() or not isinstance(value, str) or not value.startswith("coldstart."):
            continue
        if value in seen and not name.startswith("METRIC_") and not seen[value].startswith("METRIC_"):
            clashes.append((seen[value], name))
        seen.setdefault(value, name)
    assert not clashes, clashes
