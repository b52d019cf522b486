"""``otel-coldstart flush``: deliver the spool now, and say exactly what happened.

One line per outcome on stdout (sent), errors on stderr (quarantined, unreadable, left). Exit
status (``exit_codes.py``): 0 when everything was sent or nothing was waiting; 2 when not all was
sent: cold starts left in the spool (collector unreachable or failing, no exporter configured),
refused for good by the collector (quarantined) or unreadable (moved aside).
"""

from __future__ import annotations

import logging
import os
import sys

from otel_coldstart.deliver import export, spool
from otel_coldstart.exit_codes import BAD_INPUT, OK


def _endpoint() -> str:
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    default = "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318"
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", default
    )
    return f"{endpoint} ({protocol})"


def run(spool_dir: str | None, timeout_s: float = 5.0) -> int:
    from otel_coldstart import config
    from otel_coldstart.deliver import sdk_setup

    directory = spool_dir or config.load()[0].spool_dir or spool.default_dir()
    before_quarantine = len(spool.quarantined(directory))
    waiting = [e for e in spool.list_entries(directory) if e.claimed_by is None or e.stale()]
    if not waiting and not spool.recover_orphans(directory)[0]:
        held = len(spool.list_entries(directory))
        print(
            f"otel-coldstart: nothing to flush in {directory}"
            + (f"; {held} held by running processes" if held else "")
        )
        return OK
    # The exporters log every failed attempt; the outcome is reported below, in one line each.
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    logging.getLogger("otel_coldstart").setLevel(logging.CRITICAL)
    # Our distro's defaults (distro.DEFAULTS), so that flush talks to the same port as the app.
    os.environ.setdefault("OTEL_TRACES_EXPORTER", "otlp")
    os.environ.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    try:
        exporters = sdk_setup.trace_exporters(timeout_s)
    except Exception as exc:
        print(f"otel-coldstart: error: cannot configure the trace exporter: {exc}", file=sys.stderr)
        return BAD_INPUT
    # Without an exporter only raw copies with a trace file of their own can be delivered.
    try:
        result = export.drain(exporters, directory, max_bytes=0)
    finally:
        export.shutdown(exporters)
    left = [e for e in spool.list_entries(directory) if e.claimed_by is None or e.stale()]
    held = sum(1 for e in spool.list_entries(directory) if e.claimed_by is not None and not e.stale())
    quarantined = len(result.quarantined)
    where = _endpoint() if exporters else "their trace files"
    print(f"otel-coldstart: sent {len(result.sent)} spooled cold start(s) to {where}")
    if quarantined:
        total = before_quarantine + quarantined
        print(
            f"otel-coldstart: error: the collector refused {quarantined} cold start(s) for good "
            f"(HTTP 4xx); quarantined as *.rejected ({total} in {directory})",
            file=sys.stderr,
        )
    if result.bad:
        print(
            f"otel-coldstart: error: {len(result.bad)} unreadable spool file(s) moved aside or removed: "
            + ", ".join(result.bad),
            file=sys.stderr,
        )
    if left:
        if not exporters:
            reason = "OTEL_TRACES_EXPORTER names no trace exporter to flush to"
        elif result.failed:
            reason = f"collector unreachable or failing at {_endpoint()}"
        else:
            reason = f"not sent to {_endpoint()}"
        print(
            f"otel-coldstart: error: {reason}: {len(left)} cold start(s) left in {directory}"
            + (f"; {held} held by running processes" if held else ""),
            file=sys.stderr,
        )
        return BAD_INPUT
    if held:
        print(f"otel-coldstart: {held} held by running processes (they are sending them)")
    return BAD_INPUT if quarantined or result.bad else OK
