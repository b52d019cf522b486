"""Launcher warnings that say nothing to a user who chose us.

With the stock ``opentelemetry-distro`` installed beside ours (the dev extra installs it), the
launcher warned on every run that the stock configurator was "not loaded because otel_coldstart is
set by OTEL_PYTHON_CONFIGURATOR": that is what choosing ours means. Only that warning is dropped;
any other, including one about our configurator being skipped, still shows.
"""

from __future__ import annotations

import logging

LAUNCHER_LOGGER = "opentelemetry.instrumentation.auto_instrumentation._load"


class OurConfiguratorChosen(logging.Filter):
    """Drops the "Configuration of X not loaded because otel_coldstart is set by ..." record."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (
            str(record.msg).startswith("Configuration of %s not loaded because")
            and len(args) == 3
            and args[1] == "otel_coldstart"
        )


def install() -> None:
    logging.getLogger(LAUNCHER_LOGGER).addFilter(OurConfiguratorChosen())
