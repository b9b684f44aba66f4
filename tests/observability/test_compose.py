"""docker-compose.yml and docs/prometheus.yml, without Docker: every Switchyard process
has its ops endpoints on the compose network and a healthcheck on its /readyz (whose
command is run here against real ops endpoints), and Prometheus scrapes every one."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import yaml

from switchyard.cli.stack.full import SERVICE_NAMES
from switchyard.schemas.settings import Settings
from switchyard.topics.telemetry.ops import Check, OpsServer
from tests.conftest import REPO
from tests.ports import on_a_free_port


def _default_port(name: str) -> int:
    field = "bridge_port" if name == "bridge" else f"{name}_ops_port"
    port: int = Settings.model_fields[field].default
    return port


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def _probe(name: str) -> str:
    test = _compose()["services"][name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test
    code: str = test[3]
    return code


def test_every_process_has_its_ops_port_and_a_readiness_healthcheck() -> None:
    services = _compose()["services"]
    for name in SERVICE_NAMES:
        service = services[name]
        port = _default_port(name)
        assert service["command"] == [name]
        assert service["environment"]["SWITCHYARD_OPS_HOST"] == "0.0.0.0"
        if name == "bridge":
            assert service["environment"]["SWITCHYARD_BRIDGE_HOST"] == "0.0.0.0"
        else:
            assert service["expose"] == [str(port)], name
        assert f"'http://127.0.0.1:{port}/readyz'" in _probe(name), name
        health = service["healthcheck"]
        assert (health["interval"], health["retries"], health["start_period"]) == (
            "10s",
            6,
            "60s",
        )
        assert service["depends_on"]["topics"] == {"condition": "service_completed_successfully"}
        assert service["depends_on"]["redis"] == {"condition": "service_healthy"}, name


def test_prometheus_and_grafana_are_an_opt_in_profile_reading_the_docs() -> None:
    services = _compose()["services"]
    assert services["prometheus"]["profiles"] == ["observability"]
    assert services["grafana"]["profiles"] == ["observability"]
    assert (
        "./docs/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in (services["prometheus"]["volumes"])
    )
    mounted = "./docs/grafana-dashboard.json:/var/lib/grafana/dashboards/switchyard.json:ro"
    assert mounted in services["grafana"]["volumes"]
    assert (REPO / "docs" / "grafana-dashboard.json").is_file()
    # The default `docker compose up` is the stack alone.
    default = [n for n, s in services.items() if "profiles" not in s]
    assert "prometheus" not in default
    assert "grafana" not in default


def test_prometheus_scrapes_every_process_by_its_service_name() -> None:
    config = yaml.safe_load((REPO / "docs" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(SERVICE_NAMES)
    for name, job in jobs.items():
        assert job["static_configs"] == [{"targets": [f"{name}:{_default_port(name)}"]}]
        assert job.get("metrics_path", "/metrics") == "/metrics"


async def _exit_code(code: str) -> int:
    probe = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(probe.wait(), 30)


async def test_the_healthcheck_command_passes_only_while_readyz_does() -> None:
    ready = True

    async def toggled() -> Check:
        return Check.passed() if ready else Check.failed("redis away")

    def ops(port: int) -> OpsServer:
        return OpsServer("127.0.0.1", port, {"redis": toggled})

    async with on_a_free_port(ops) as (port, _):
        code = _probe("engine").replace("127.0.0.1:9101", f"127.0.0.1:{port}")
        assert await _exit_code(code) == 0
        ready = False
        assert await _exit_code(code) == 1
    assert await _exit_code(code) == 1  # nothing answers
