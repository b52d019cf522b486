"""The ``otel-coldstart`` command. Exit codes: ``exit_codes.py`` (one table for help and README)."""

from __future__ import annotations

import sys

from otel_coldstart import exit_codes
from otel_coldstart.exit_codes import BAD_CONFIG, BAD_INPUT, FAILED, OK, fail

TYPE_CHECKING = False
if TYPE_CHECKING:  # argparse is imported where it is used: `run` must not pay for it before its exec
    import argparse
    from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    import argparse

    from otel_coldstart.version import __version__

    parser = argparse.ArgumentParser(
        prog="otel-coldstart",
        description="Trace, judge and explain a Python application's cold start.",
        epilog=exit_codes.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="judge cold-start traces against targets",
        description=(
            "Read cold-start traces (files in any supported format, or Jaeger's query API) and judge "
            "them against targets. With several cold starts, each target is judged on one statistic "
            "(--statistic, default p50: one noisy run can neither fail nor pass a build on its own)."
        ),
        epilog=exit_codes.epilog("validate"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument(
        "trace_files",
        metavar="TRACE_FILE",
        nargs="*",
        help="OTLP JSON (lines or one document, gzip ok), Jaeger v3/classic/UI JSON; format auto-detected",
    )
    _add_jaeger_arguments(validate)
    validate.add_argument(
        "--targets", metavar="FILE", help="TOML targets (default: pyproject.toml, then defaults)"
    )
    validate.add_argument(
        "--statistic",
        metavar="STAT",
        help="statistic judged over many cold starts: p50 (default), p95, p99, max, mean",
    )
    _add_output_arguments(validate)
    validate.add_argument("--junit", metavar="FILE", help="also write JUnit XML (one test case per target)")
    validate.add_argument(
        "--html", metavar="FILE", help="also write a self-contained HTML page with an icicle"
    )

    diff = commands.add_parser(
        "diff",
        help="compare two sets of cold starts (files or Jaeger queries)",
        description=(
            "Match spans of BASE and CANDIDATE by what they are (module name, service name, path) and "
            "list what got slower, bigger, new or gone. A source is a trace file or a Jaeger URL with "
            "its query: http://localhost:16686?service=NAME&limit=20&since=1h or ...?trace_id=ID."
        ),
        epilog=exit_codes.epilog("diff"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    diff.add_argument("base", metavar="BASE", help="trace file or Jaeger URL with ?service= or ?trace_id=")
    diff.add_argument("candidate", metavar="CANDIDATE", help="trace file or Jaeger URL")
    diff.add_argument(
        "--max-regression",
        metavar="LIMIT",
        help="gate: fail (exit 1) when the cold start or one span grows by more than this: "
        "10%% (of the base cold start), 50ms, or both (10%%,50ms)",
    )
    diff.add_argument("--statistic", metavar="STAT", default=None, help="statistic per side (default p50)")
    diff.add_argument("--top", type=int, default=15, help="rows per list (default 15)")
    _add_output_arguments(diff)

    flush = commands.add_parser(
        "flush",
        help="send the spooled cold-start traces now (exit 0 all sent, 2 some left, 4 quarantined)",
        description="Send cold-start traces that earlier processes could not export, through the "
        "exporter that the standard OTEL_* variables configure.",
        epilog=exit_codes.epilog("flush"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    flush.add_argument("--spool-dir", metavar="DIR", help="default: $OTEL_PYTHON_COLDSTART_SPOOL_DIR")
    flush.add_argument("--timeout", type=float, default=5.0, help="seconds per export (default 5)")

    run = commands.add_parser(
        "run",
        help="run COMMAND with its cold start traced, without opentelemetry-instrument's start-up cost",
        description="Exec COMMAND with OTEL_PYTHON_COLDSTART_AUTO=1: every Python process it starts "
        "records its cold start from the otel_coldstart.pth hook on (same spans and export as under "
        "opentelemetry-instrument).",
        epilog=exit_codes.epilog("run"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="[--] COMMAND...")

    demo = commands.add_parser(
        "demo",
        help="trace the bundled demo app's cold start and judge it (no collector needed)",
        epilog=exit_codes.epilog("demo"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--trace-file", default="demo.coldstart.jsonl", help="where to write the trace")
    demo.add_argument("--targets", metavar="FILE", help="TOML targets")
    return parser


def _out(text: str) -> None:
    """Print to stdout; a reader that left early (``validate ... | head``) is not an error of ours."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again at exit.
        import contextlib
        import os

        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _add_jaeger_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Jaeger source (instead of TRACE_FILE)")
    group.add_argument("--jaeger", metavar="URL", help="Jaeger query base URL, e.g. http://localhost:16686")
    group.add_argument("--service", metavar="NAME", help="fetch the latest cold starts of this service")
    group.add_argument("--trace-id", metavar="ID", help="fetch this one trace")
    group.add_argument("--limit", type=int, default=20, help="how many cold starts to fetch (default 20)")
    group.add_argument("--since", default="1h", help="how far back to search: 90s, 15m, 1h, 2d (default 1h)")
    group.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request (default 10)")
    group.add_argument("--retries", type=int, default=3, help="retries on network errors and 5xx (default 3)")


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="stdout: the human report (default) or the JSON document (schema in the README)",
    )
    parser.add_argument("--markdown", metavar="FILE", help="also write Markdown (e.g. $GITHUB_STEP_SUMMARY)")
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour (auto: TTY and no NO_COLOR)",
    )


def _write(path: str, text: str) -> None:
    from otel_coldstart.validate.model import TraceError

    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise TraceError(f"cannot write {path}: {exc.strerror or exc}") from None


def _sources(args: argparse.Namespace) -> list:
    from otel_coldstart.validate.model import TraceError
    from otel_coldstart.validate.sources import JaegerQuery, parse_spec

    if args.jaeger:
        if args.trace_files:
            raise TraceError("give TRACE_FILE or --jaeger, not both")
        if not args.service and not args.trace_id:
            raise TraceError("--jaeger needs --service NAME or --trace-id ID")
        return [
            JaegerQuery(
                args.jaeger, args.service, args.trace_id, args.limit, args.since, args.timeout, args.retries
            )
        ]
    if args.service or args.trace_id:
        raise TraceError("--service and --trace-id need --jaeger URL")
    if not args.trace_files:
        raise TraceError("give a TRACE_FILE or --jaeger URL --service NAME")
    return [parse_spec(spec) for spec in args.trace_files]


def validate(trace_file: str, targets_file: str | None) -> int:
    """Judge one trace file with the text report (the demo's entry point)."""
    return main(["validate", trace_file] + (["--targets", targets_file] if targets_file else []))


def _run_validate(args: argparse.Namespace) -> int:
    import json

    from otel_coldstart.validate import gather, recommend, result, roles, stats, targets
    from otel_coldstart.validate.model import TraceError
    from otel_coldstart.validate.outputs import report

    if args.statistic:
        try:
            stats.check_statistic(args.statistic)
        except stats.StatisticError as exc:
            return fail(f"--statistic: {exc}", BAD_INPUT)  # bad usage, as in diff
    try:
        targets_value, origin = targets.load(args.targets)
        statistic = stats.check_statistic(args.statistic or targets_value.statistic)
    except (targets.TargetsError, stats.StatisticError) as exc:
        return fail(str(exc), BAD_CONFIG)
    try:
        # Each cold start is summarised as its trace completes and kept without its spans: a fleet
        # of 1,000 traces costs what its summaries cost (gather.py).
        loaded = gather.gather(_sources(args), statistic, targets_value)
        summaries, helpers = loaded.judged, loaded.helpers
        if not summaries:
            only = ", ".join(sorted({roles.role_of(s) for s in helpers}))
            return fail(
                f"{loaded.description}: only helper processes' cold starts ({only}), nothing to judge",
                BAD_INPUT,
            )
        verdicts = targets.judge(summaries, targets_value, statistic)
        shown = loaded.full(result.representative(summaries, statistic))
        document = result.build(
            summaries,
            verdicts,
            recommend.recommend(shown),
            targets_value,
            origin,
            statistic,
            loaded.description,
            loaded.fmt,
            helpers,
            recommend.left_out(shown),
            shown,
            loaded.fleet,
        )
        if args.junit:
            from otel_coldstart.validate.outputs import junit

            _write(args.junit, junit.render(document))
        if args.markdown:
            from otel_coldstart.validate.outputs import markdown

            _write(args.markdown, markdown.render(document))
        if args.html:
            from otel_coldstart.validate.outputs import html_page

            _write(args.html, html_page.render(document, shown.trace))
    except TraceError as exc:
        return fail(str(exc), BAD_INPUT)
    if args.format == "json":
        _out(json.dumps(document, indent=2))
    else:
        count = loaded.count
        style = report.Style(report.use_colour(sys.stdout, args.color))
        _out(
            f"Read {count} cold-start trace{'s' if count != 1 else ''} from {loaded.description} "
            f"({loaded.fmt}).\n\n{report.render(document, style)}"
        )
    return FAILED if document["result"] == "fail" else OK


def _run_diff(args: argparse.Namespace) -> int:
    import json

    from otel_coldstart.validate import analysis, compare, sources, stats
    from otel_coldstart.validate.model import TraceError
    from otel_coldstart.validate.outputs import diff_report

    try:
        statistic = stats.check_statistic(args.statistic or stats.DEFAULT_STATISTIC)
        threshold = compare.parse_threshold(args.max_regression) if args.max_regression else None
    except (stats.StatisticError, compare.ThresholdError) as exc:
        return fail(str(exc), BAD_INPUT)
    try:
        sides = []
        for spec in (args.base, args.candidate):
            loaded = sources.load(sources.parse_spec(spec))
            sides.append([analysis.summarize(t) for t in loaded.traces])
        document = compare.compare(sides[0], sides[1], statistic, threshold)
        if args.markdown:
            _write(args.markdown, diff_report.render_markdown(document, args.top))
    except TraceError as exc:
        return fail(str(exc), BAD_INPUT)
    if args.format == "json":
        _out(json.dumps(document, indent=2))
    else:
        _out(diff_report.render(document, args.top))
    return document["exit_code"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"] and argv[1:2] not in (["-h"], ["--help"]):
        # Before argparse: what `run` costs before its exec is start-up time of the app it runs.
        from otel_coldstart.launch import autostart

        return autostart.run(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return _run_validate(args)
    if args.command == "diff":
        return _run_diff(args)
    if args.command == "flush":
        from otel_coldstart.cli import flush_command

        return flush_command.run(args.spool_dir, args.timeout)
    if args.command == "demo":
        from otel_coldstart.cli import demo

        ran = demo.run(args.trace_file)
        return ran if ran != OK else validate(args.trace_file, args.targets)
    return BAD_INPUT  # pragma: no cover - argparse enforces a command
