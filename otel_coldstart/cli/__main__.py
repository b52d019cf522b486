"""``python -m otel_coldstart.cli``: the ``otel-coldstart`` command without its console script."""

import sys

from otel_coldstart.cli import main

sys.exit(main())
