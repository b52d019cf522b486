"""``json.dumps(value, separators=(",", ":"))`` without importing the ``json`` package.

Every traced process writes JSON at exit (the raw copy, the trace file). The ``json`` package
imports its decoder, which imports ``re``, which imports ``enum``: ~5 ms of CPU, as much as all the
rest of a small program's exit work, for a program that never imports them itself. The encoder
here is the one ``json.dumps`` uses (the C ``_json.make_encoder``, compact separators, ASCII
output), so the text is the same byte for byte; without the C accelerator, ``json`` itself.
Reading JSON (``json.loads``) is for flush and the drain, never the exit: it uses ``json``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the exit path
    from collections.abc import Callable
    from typing import Any


def _accelerator(name: str) -> Any:
    """``_json.<name>``, the C half of ``json``, or ``None`` on an interpreter without it."""
    try:
        import _json
    except ImportError:  # pragma: no cover
        return None
    return getattr(_json, name, None)


_make_encoder = _accelerator("make_encoder")
_make_scanner = _accelerator("make_scanner")
string: Callable[[str], str] = _accelerator("encode_basestring_ascii")
if string is None:  # pragma: no cover
    from json.encoder import encode_basestring_ascii as string


def _not_serializable(value: Any) -> Any:
    # json.JSONEncoder.default's own error.
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def dumps(value: Any, default: Callable[[Any], Any] | None = None, check_circular: bool = True) -> str:
    """``json.dumps(value, separators=(",", ":"), default=default, check_circular=check_circular)``."""
    if _make_encoder is not None:
        try:
            encoder = _make_encoder(
                {} if check_circular else None,
                default or _not_serializable,
                string,
                None,
                ":",
                ",",
                False,
                False,
                True,
            )
        except TypeError:  # pragma: no cover - a future interpreter's signature: json does it
            pass
        else:
            return "".join(encoder(value, 0))
    import json

    return json.dumps(value, separators=(",", ":"), default=default, check_circular=check_circular)


class _Context:
    """What ``_json.make_scanner`` reads of a ``json.JSONDecoder``: ``json.loads``'s defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
    memo: dict[Any, Any] = {}


def loads_own(text: str) -> Any:
    """``json.loads(text)`` for text this module wrote (no whitespace around it, well formed): the
    exit builds its spans from its own raw copy, read back as a drainer reads it."""
    if _make_scanner is not None:
        try:
            value, end = _make_scanner(_Context())(text, 0)
        except StopIteration:
            pass  # not ours after all: json says what is wrong with it
        else:
            if end == len(text):
                return value
    import json

    return json.loads(text)
