"""docker-compose.yml and the collector/Jaeger configs read as a user's tools would read them.

No Docker engine runs here, so this checks what can be checked without one: the files parse,
they agree with each other (ports, endpoints, service names, the app's OTEL env), every listener
inside a container binds 0.0.0.0, every published port is on 127.0.0.1, images are pinned, and
component names are the ones the pinned collector version registers.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
COLLECTOR = yaml.safe_load((ROOT / "collector" / "otel-collector-config.yaml").read_text())
JAEGER = yaml.safe_load((ROOT / "collector" / "jaeger-config.yaml").read_text())

#: Component names of otel/opentelemetry-collector-contrib >= 0.144 (otlp_grpc/otlp_http since
#: 0.144, span_metrics in contrib); the deprecated aliases are refused here on purpose.
COLLECTOR_COMPONENTS = {
    "receivers": {"otlp", "prometheus", "hostmetrics"},
    "processors": {"memory_limiter", "batch", "resource", "attributes", "filter"},
    "exporters": {"otlp_grpc", "otlp_http", "prometheus", "debug", "file"},
    "connectors": {"span_metrics"},
    "extensions": {"health_check", "healthcheckv2", "pprof", "zpages"},
}
DEPRECATED = {"otlp": "otlp_grpc", "otlphttp": "otlp_http", "spanmetrics": "span_metrics"}


def kind(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def host_port(endpoint: str) -> tuple[str, int]:
    parsed = urlparse(endpoint if "://" in endpoint else f"//{endpoint}")
    return parsed.hostname or "", parsed.port or 0


def published(service: str) -> dict[int, tuple[str, int]]:
    """container port -> (host address, host port)."""
    out = {}
    for spec in SERVICES[service].get("ports", []):
        address, host, container = str(spec).split(":")
        out[int(container)] = (address, int(host))
    return out


def version(image: str) -> tuple[int, ...]:
    tag = image.rsplit(":", 1)[1].removesuffix("-slim")
    return tuple(int(part) for part in tag.lstrip("v").split("."))


def test_images_are_pinned_to_versions_with_the_names_we_use() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        assert re.search(r":v?\d+\.\d+\.\d+(-slim)?$", image), f"{name}: {image} is not pinned"
    assert SERVICES["collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    assert version(SERVICES["collector"]["image"]) >= (0, 144)  # otlp_grpc, span_metrics
    assert SERVICES["jaeger"]["image"].startswith("jaegertracing/jaeger:")
    assert version(SERVICES["jaeger"]["image"])[0] == 2


def test_collector_components_exist_and_pipelines_are_wired() -> None:
    for section, known in COLLECTOR_COMPONENTS.items():
        for component_id in COLLECTOR.get(section) or {}:
            assert kind(component_id) not in DEPRECATED or section == "receivers", (
                f"{section}.{component_id}: use {DEPRECATED[kind(component_id)]}"
            )
            assert kind(component_id) in known, f"{section}.{component_id} is not a known component"
    service = COLLECTOR["service"]
    assert set(service["extensions"]) <= set(COLLECTOR["extensions"])
    connectors = set(COLLECTOR.get("connectors") or {})
    for name, pipeline in service["pipelines"].items():
        assert set(pipeline["receivers"]) <= set(COLLECTOR["receivers"]) | connectors, name
        assert set(pipeline["exporters"]) <= set(COLLECTOR["exporters"]) | connectors, name
        assert pipeline["processors"][0] == "memory_limiter", f"{name}: memory_limiter must come first"
        assert pipeline["processors"][-1] == "batch", f"{name}: batch belongs last"
    # A connector must be an exporter of one pipeline and a receiver of another.
    for connector in connectors:
        pipelines = service["pipelines"].values()
        assert any(connector in p["exporters"] for p in pipelines)
        assert any(connector in p["receivers"] for p in pipelines)
    assert "traces" in service["pipelines"] and "metrics" in service["pipelines"]


def listeners(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, endpoint) of every server endpoint in a collector-style config."""
    found = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "endpoint" and isinstance(value, str) and "://" not in value:
                    found.append((where, value))
                else:
                    walk(value, f"{where}.{key}")

    for section in ("receivers", "extensions"):
        walk(config.get(section) or {}, section)
    walk((config.get("exporters") or {}).get("prometheus") or {}, "exporters.prometheus")
    return found


@pytest.mark.parametrize("name,config", [("collector", COLLECTOR), ("jaeger", JAEGER)])
def test_every_listener_in_a_container_binds_all_interfaces(name: str, config: dict[str, Any]) -> None:
    found = listeners(config)
    assert found
    for where, endpoint in found:
        assert host_port(endpoint)[0] == "0.0.0.0", f"{name} {where}: {endpoint} is unreachable from outside"


def test_published_ports_are_loopback_only_and_match_the_listeners() -> None:
    for name, service in SERVICES.items():
        for spec in service.get("ports", []):
            assert str(spec).startswith("127.0.0.1:"), f"{name}: {spec} is published beyond loopback"
    collector_ports = {host_port(e)[1] for _, e in listeners(COLLECTOR)}
    assert set(published("collector")) <= collector_ports
    assert {4317, 4318, 13133} <= collector_ports
    jaeger_ports = {host_port(e)[1] for _, e in listeners(JAEGER)}
    assert set(published("jaeger")) <= jaeger_ports and 16686 in jaeger_ports


def test_collector_sends_to_jaeger_where_jaeger_listens() -> None:
    exporters = {k: v for k, v in COLLECTOR["exporters"].items() if kind(k) == "otlp_grpc"}
    (exporter,) = exporters.values()
    host, port = host_port(exporter["endpoint"])
    assert host == "jaeger" and host in SERVICES
    assert exporter["tls"]["insecure"] is True  # plain gRPC inside the compose network
    assert port == host_port(JAEGER["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])[1]
    assert (
        JAEGER["exporters"]["jaeger_storage_exporter"]["trace_storage"]
        in JAEGER["extensions"]["jaeger_storage"]["backends"]
    )
    metrics = JAEGER["extensions"]["jaeger_query"]["storage"]["metrics"]
    prometheus = JAEGER["extensions"]["jaeger_storage"]["metric_backends"][metrics]["prometheus"]
    assert host_port(prometheus["endpoint"]) == ("prometheus", 9090) and "prometheus" in SERVICES


def test_prometheus_scrapes_the_collector_exporter() -> None:
    scrape = yaml.safe_load((ROOT / "collector" / "prometheus.yml").read_text())
    targets = [t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"collector:{host_port(COLLECTOR['exporters']['prometheus']['endpoint'])[1]}"]


def test_the_app_exports_to_the_collector_with_our_distro() -> None:
    app = SERVICES["app"]
    env = app["environment"]
    assert env["OTEL_PYTHON_DISTRO"] == env["OTEL_PYTHON_CONFIGURATOR"] == "otel_coldstart"
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    host, port = host_port(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert host == "collector"
    protocols = COLLECTOR["receivers"]["otlp"]["protocols"]
    expected = "http" if env["OTEL_EXPORTER_OTLP_PROTOCOL"].startswith("http") else "grpc"
    assert port == host_port(protocols[expected]["endpoint"])[1]
    assert env["OTEL_PYTHON_COLDSTART_SPOOL_DIR"] in {v.split(":")[1] for v in app["volumes"]}
    command = app["command"]
    assert command[:2] == ["opentelemetry-instrument", "python"]
    assert (ROOT / command[2]).is_file()


def test_start_up_order_waits_for_health() -> None:
    assert SERVICES["jaeger"]["healthcheck"]["test"][-1].endswith(":13133/status")
    assert "healthcheck" not in SERVICES["collector"]  # FROM scratch: probed by collector-ready
    ready = " ".join(SERVICES["collector-ready"]["command"])
    port = host_port(COLLECTOR["extensions"]["health_check"]["endpoint"])[1]
    assert f"http://collector:{port}/" in ready
    assert SERVICES["collector"]["depends_on"]["jaeger"]["condition"] == "service_healthy"
    assert SERVICES["app"]["depends_on"]["collector-ready"]["condition"] == "service_completed_successfully"
    assert SERVICES["validator"]["depends_on"]["app"]["condition"] == "service_completed_successfully"


def test_the_validator_fetches_the_apps_service_from_jaeger_with_the_cli_as_built() -> None:
    from otel_coldstart import cli

    command = SERVICES["validator"]["command"]
    line = command[-1] if command[0] == "sh" else shlex.join(command)
    argv = shlex.split(line.split("&&")[-1])
    assert argv[0] == "otel-coldstart"
    args = cli._parser().parse_args(argv[1:])
    assert args.command == "validate"
    assert host_port(args.jaeger) == ("jaeger", 16686)
    assert args.service == SERVICES["app"]["environment"]["OTEL_SERVICE_NAME"]
