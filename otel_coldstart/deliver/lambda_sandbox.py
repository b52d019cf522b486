"""What a Lambda sandbox's environment says about it: read by the resource, the spool and the launch.

Only environment lookups: the Runtime API watcher itself is ``launch/faas_lambda.py``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays off the start-up path (it imports re, ~2-5 ms)
    from typing import Any

#: Set by Lambda in every sandbox: the Runtime API's host:port.
RUNTIME_API_ENV = "AWS_LAMBDA_RUNTIME_API"
#: Where the spool goes in a sandbox: the home directory is read-only, /tmp the only writable place.
SPOOL_DIR = "/tmp/otel-coldstart/spool"


def in_lambda() -> bool:
    return bool(os.environ.get(RUNTIME_API_ENV))


def resource_attributes() -> dict[str, Any]:
    """FaaS and cloud resource attributes from the Lambda environment ({} outside Lambda)."""
    env = os.environ
    if not env.get(RUNTIME_API_ENV) and not env.get("AWS_LAMBDA_FUNCTION_NAME"):
        return {}
    attrs: dict[str, Any] = {"cloud.provider": "aws", "cloud.platform": "aws_lambda"}
    for key, name in (
        ("cloud.region", "AWS_REGION"),
        ("faas.name", "AWS_LAMBDA_FUNCTION_NAME"),
        ("faas.version", "AWS_LAMBDA_FUNCTION_VERSION"),
        ("faas.instance", "AWS_LAMBDA_LOG_STREAM_NAME"),
    ):
        if env.get(name):
            attrs[key] = env[name]
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if memory.isdigit():
        attrs["faas.max_memory"] = int(memory) * 1024 * 1024  # MiB -> bytes, as the convention says
    if env.get("AWS_LAMBDA_LOG_GROUP_NAME"):
        attrs["aws.log.group.names"] = [env["AWS_LAMBDA_LOG_GROUP_NAME"]]
    if env.get("AWS_LAMBDA_FUNCTION_NAME") and not _service_name_configured():
        attrs["service.name"] = env["AWS_LAMBDA_FUNCTION_NAME"]
    return attrs


def _service_name_configured() -> bool:
    if os.environ.get("OTEL_SERVICE_NAME"):
        return True
    return any(
        item.split("=", 1)[0].strip() == "service.name"
        for item in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
    )
