"""The ``otel-coldstart`` command's exit codes: one table, read by the CLI's help and the README.

``tests/test_exit_codes.py`` checks that the README shows ``markdown_table()`` verbatim, so the
documentation cannot drift from what the commands return.
"""

from __future__ import annotations

import sys

#: Success: every target met (``validate``, ``demo``), no regression above the gate (``diff``),
#: everything sent or nothing to send (``flush``).
OK = 0
#: The judgement failed: a target missed, or a regression above ``--max-regression``.
FAILED = 1
#: Bad input: a missing, malformed or truncated trace, no cold-start root, an unreachable Jaeger
#: or collector, bad command-line usage.
BAD_INPUT = 2
#: Bad configuration: the targets file (unreadable, bad TOML, unknown key, bad value, an unknown
#: statistic in it) (``validate``, ``demo``). An unknown ``--statistic`` is bad usage (2).
BAD_CONFIG = 3
#: ``run``: COMMAND was found but cannot be executed (the shell's code).
NOT_EXECUTABLE = 126
#: ``run``: COMMAND was not found (the shell's code).
NOT_FOUND = 127

#: (code, meaning per command): the single source of both renderings below.
TABLE: tuple[tuple[int, str, dict[str, str]], ...] = (
    (
        OK,
        "success",
        {
            "validate, demo": "every target met",
            "diff": "no regression above `--max-regression` (or no gate)",
            "flush": "every spooled trace sent, or nothing to send",
            "run": "`run` execs COMMAND: from then on the exit status is COMMAND's own",
        },
    ),
    (
        FAILED,
        "failed",
        {
            "validate, demo": "a target missed",
            "diff": "a regression above `--max-regression`",
        },
    ),
    (
        BAD_INPUT,
        "bad input",
        {
            "validate, demo": "missing or malformed trace, no cold-start root, unreachable Jaeger, "
            "bad usage (an unknown `--statistic` too); `demo`: the demo app failed",
            "diff": "missing or malformed trace, unreachable Jaeger, bad `--max-regression` or "
            "`--statistic`, bad usage",
            "flush": "not all sent: the collector is unreachable or refused (the rest stay spooled), no "
            "trace exporter configured, or unreadable spool files (moved aside)",
            "run": "no COMMAND given",
        },
    ),
    (
        BAD_CONFIG,
        "bad configuration",
        {
            "validate, demo": "the targets file (unreadable, bad TOML, unknown key, bad value, "
            "an unknown statistic in it)",
        },
    ),
    (NOT_EXECUTABLE, "not executable", {"run": "COMMAND was found but cannot be executed"}),
    (NOT_FOUND, "not found", {"run": "COMMAND was not found"}),
)


def epilog(command: str | None = None) -> str:
    """The ``exit codes:`` block of ``--help``: every command's, or one command's."""
    lines = ["exit codes:"]
    for code, _name, meanings in TABLE:
        for commands, meaning in meanings.items():
            if command is not None and command not in commands.split(", "):
                continue
            who = "" if command is not None else f" ({commands})"
            lines.append(f"  {code}  {meaning.replace('`', '')}{who}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The same table for the README."""
    rows = ["| exit code | command | meaning |", "|---|---|---|"]
    for code, name, meanings in TABLE:
        for commands, meaning in meanings.items():
            who = ", ".join(f"`{c}`" for c in commands.split(", "))
            rows.append(f"| `{code}` {name} | {who} | {meaning} |")
    return "\n".join(rows) + "\n"


def fail(message: str, code: int = BAD_INPUT) -> int:
    """Print the one-line error a bad input or configuration gets, and return its exit code."""
    print(f"otel-coldstart: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover - python -m otel_coldstart.exit_codes > fragment
    sys.stdout.write(markdown_table())
