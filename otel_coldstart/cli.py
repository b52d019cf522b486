"""The ``otel-coldstart`` command.

Exit codes (the same for every subcommand that judges):
  0  every target met
  1  a target missed
  2  bad input: missing or malformed trace, no cold-start root, unreachable source, bad usage
  3  bad configuration: the targets file or an OTEL_PYTHON_COLDSTART_* variable
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_TARGET_MISSED, EXIT_BAD_INPUT, EXIT_BAD_CONFIG = 0, 1, 2, 3

EPILOG = """exit codes:
  0  every target met
  1  a target missed
  2  bad input (missing or malformed trace, no cold-start root, unreachable source, bad usage)
  3  bad configuration (targets file)
"""


def _parser() -> argparse.ArgumentParser:
    from otel_coldstart.version import __version__

    parser = argparse.ArgumentParser(
        prog="otel-coldstart",
        description="Trace, judge and explain a Python application's cold start.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="judge cold-start traces against targets",
        description="Read cold-start traces and judge them against targets.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument(
        "trace_file", metavar="TRACE_FILE", help="OTLP JSON (lines or one document, gzip ok)"
    )
    validate.add_argument(
        "--targets", metavar="FILE", help="TOML targets (default: pyproject.toml, then defaults)"
    )

    demo = commands.add_parser(
        "demo",
        help="trace the bundled demo app's cold start and judge it (no collector needed)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--trace-file", default="demo.coldstart.jsonl", help="where to write the trace")
    demo.add_argument("--targets", metavar="FILE", help="TOML targets")
    return parser


def _error(message: str, code: int) -> int:
    print(f"otel-coldstart: error: {message}", file=sys.stderr)
    return code


def validate(trace_file: str, targets_file: str | None) -> int:
    from otel_coldstart.validate import analysis, readers, recommend, report, targets
    from otel_coldstart.validate.model import TraceError

    try:
        targets_value, origin = targets.load(targets_file)
    except targets.TargetsError as exc:
        return _error(str(exc), EXIT_BAD_CONFIG)
    try:
        fmt, traces = readers.read_file(trace_file)
    except TraceError as exc:
        return _error(str(exc), EXIT_BAD_INPUT)
    code = EXIT_OK
    usable = [t for t in traces if t.root is not None]
    print(f"Read {len(usable)} cold-start trace(s) from {trace_file} ({fmt}).\n")
    for trace in usable:
        summary = analysis.summarize(trace)
        verdicts = targets.judge(summary, targets_value)
        print(report.render(summary, verdicts, recommend.recommend(summary), origin))
        print()
        if any(v.failed for v in verdicts):
            code = EXIT_TARGET_MISSED
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return validate(args.trace_file, args.targets)
    if args.command == "demo":
        from otel_coldstart import demo

        return demo.run(args.trace_file, args.targets)
    return EXIT_BAD_INPUT  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":
    sys.exit(main())
