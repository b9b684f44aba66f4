"""The README's first command, minus the installs: the whole stack up, the demo, down."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from switchyard.cli.main import main
from switchyard.cli.stack import processes
from tests.conftest import REPO
from tests.ports import free_port, stack_up_on_free_ports

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_stack_up_runs_the_demo_and_down_stops_every_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tried: list[Path] = []

    def environment() -> dict[str, str]:
        # A home per attempt: a broker's data is formatted with its ports.
        tried.append(tmp_path / f"stack-{len(tried)}")
        return {
            "SWITCHYARD_HOME": str(tried[-1]),
            "SWITCHYARD_CACHE_HOME": str(REPO / ".switchyard" / "cache"),
            "SWITCHYARD_KAFKA_PORT": str(free_port()),
            "SWITCHYARD_KAFKA_CONTROLLER_PORT": str(free_port()),
            "SWITCHYARD_REDIS_PORT": str(free_port()),
            "SWITCHYARD_BRIDGE_PORT": str(free_port()),
            **{
                f"SWITCHYARD_{n.upper()}_OPS_PORT": str(free_port())
                for n in ("engine", "executor", "timers", "scheduler", "triggers")
            },
            "SWITCHYARD_KAFKA_HEAP": "256m",
            "SWITCHYARD_TEMPLATE_WORKERS": "1",
        }

    stack_up_on_free_ports(["stack", "up"], environment, monkeypatch, capsys)
    home = tried[-1]
    pids: list[int] = []
    try:
        out = capsys.readouterr().out
        for service in ("engine", "executor", "timers", "scheduler", "triggers", "bridge"):
            assert f"{service}: ready on" in out
            port = os.environ[
                f"SWITCHYARD_{service.upper()}_" + ("PORT" if service == "bridge" else "OPS_PORT")
            ]
            assert f"metrics on http://127.0.0.1:{port}/metrics" in out
        assert "clientId=dev-machine" in out

        assert main(["demo"]) == 0
        out = capsys.readouterr().out
        assert "deploy (KAFKA) COMPLETED SUCCESS" in out
        assert '"deploymentUrl": "https://checkout.example.com"' in out
        # It ends by pointing at the run's page in the UI and at the CLI, logged in.
        [run_id] = re.findall(r"^run (wfr_\w+): COMPLETED / SUCCESS$", out, re.MULTILINE)
        port = os.environ["SWITCHYARD_BRIDGE_PORT"]
        assert f"http://127.0.0.1:{port}/ui/#/runs/{run_id}" in out
        assert f"login --api-url http://127.0.0.1:{port} --client-id dev-admin" in out
        assert main(["demo", "--json"]) == 0
        assert '"result": "SUCCESS"' in capsys.readouterr().out
        pids = [int(p.read_text()) for p in (home / "run").glob("*.pid")]
        # redis, kafka, engine, executor, timers, scheduler, triggers, bridge
        assert len(pids) == 8
    finally:
        assert main(["stack", "down"]) == 0
    assert not any(processes.is_alive(pid) for pid in pids)
    assert list((home / "run").glob("*.pid")) == []
