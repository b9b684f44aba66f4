"""Every process's ops endpoints, on real processes: /healthz answers, /readyz names
its checks and turns 503 naming ``redis`` when Redis goes away, /metrics serves
Prometheus' text format, and a taken ops port fails start-up naming its setting."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from switchyard.bridge.credentials import hash_secret
from switchyard.cli.stack.full import environment
from switchyard.cli.stack.launcher import Say, Stack, readiness
from switchyard.cli.stack.processes import ProcessSpec
from switchyard.schemas.settings import Settings
from switchyard.topics.registry import TopicRegistry
from switchyard.topics.telemetry.checks import member_finding
from switchyard.topics.telemetry.ops import Check
from tests.helpers import private_redis_db, until
from tests.observability.processes import Launched, launched
from tests.observability.test_dashboard import dashboard_series, series_of_exposition
from tests.ports import redis_server

pytestmark = pytest.mark.integration

CHECKS = {
    "engine": {"redis", "kafka", "consumer"},
    "executor": {"redis", "kafka", "consumer"},
    "triggers": {"redis", "kafka", "consumer"},
    "timers": {"redis", "kafka", "loop"},
    "scheduler": {"redis", "kafka", "loop"},
    "bridge": {"redis", "kafka"},  # on its API port
}


def with_bridge_auth(settings: Settings, home: Path) -> Settings:
    auth = home / "auth.json"
    user = {"email": "admin@example.com", "role": "Admin", "clientId": "admin",
            "clientSecretHash": hash_secret(uuid.uuid4().hex)}  # fmt: skip
    auth.write_bytes(orjson.dumps({"users": [user], "machines": []}))
    return settings.model_copy(
        update={"auth_file": auth, "token_secret": SecretStr(uuid.uuid4().hex)}
    )


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(url)


async def _readiness(url: str) -> tuple[int, dict[str, Any]]:
    response = await _get(f"{url}/readyz")
    return response.status_code, response.json()


def readiness_of(url: str) -> Callable[[], Awaitable[tuple[int, dict[str, Any]]]]:
    return partial(_readiness, url)


async def test_every_process_serves_liveness_readiness_and_metrics(
    topics: Settings, session_tag: str, tmp_path: Path
) -> None:
    # Timers and schedules are one set per Redis database: a database of our own.
    mine = with_bridge_auth(private_redis_db(topics, session_tag), tmp_path)
    async with launched(mine, list(CHECKS), tmp_path) as stack:
        exposed: set[str] = set()
        for name, expected in CHECKS.items():
            url = stack.ops_url(name)
            health = await _get(f"{url}/healthz")
            assert (health.status_code, health.json()) == (200, {"ok": True}), name
            # The consumers join their groups after start-up: ready once they have.
            _, body = await until(readiness_of(url), lambda found: found[0] == 200, within=60)
            assert set(body["checks"]) == expected, (name, body)
            assert body["ok"] is True
            assert all(check["ok"] for check in body["checks"].values()), body
            assert body["checks"]["redis"]["detail"] == "PING answered"
            assert body["checks"]["kafka"]["detail"].startswith("metadata from 1 broker")
            scraped = await _get(f"{url}/metrics")
            assert scraped.status_code == 200
            assert scraped.headers["content-type"].startswith("text/plain")
            assert "process_cpu_seconds_total" in scraped.text, name
            exposed |= series_of_exposition(scraped.text)
        # Every series the Grafana dashboard reads is declared by a running process.
        assert dashboard_series() <= exposed, sorted(dashboard_series() - exposed)
        engine = (await _readiness(stack.ops_url("engine")))[1]["checks"]["consumer"]
        inbox = TopicRegistry.from_settings(stack.settings).inbox.name
        # The one engine of this group holds every inbox partition.
        assert engine["detail"].startswith(
            f"assigned {stack.settings.inbox_partitions} partitions of {inbox}"
        ), engine
        timers = (await _readiness(stack.ops_url("timers")))[1]["checks"]["loop"]
        assert timers["detail"] == "timers-loop running"

        # `switchyard stack status`: each process's metrics URL and its readiness.
        listed = Stack(stack.settings, [Listed(stack, name, tmp_path) for name in CHECKS])
        lines = [status.line() for status in await asyncio.to_thread(listed.status)]
        for name, line in zip(CHECKS, lines, strict=True):
            assert line.startswith(f"{name:<9} running  pid {stack.processes[name].pid}")
            assert line.endswith(f"  {stack.ops_url(name)}/metrics  ready"), line


class Listed:
    """A launched process as a stack component (what ``Stack.status`` reads)."""

    def __init__(self, stack: Launched, name: str, home: Path) -> None:
        self.spec = ProcessSpec(name, (), name, home / f"{name}.pid", stack.logs[name])
        self.ops_url = stack.ops_url(name)
        self._pid = stack.processes[name].pid

    def pid(self) -> int | None:
        return self._pid

    def start(self, say: Say | None = None) -> int:
        raise NotImplementedError

    def wait_ready(self, pid: int, timeout: float = 0) -> None:
        raise NotImplementedError

    def stop(self) -> bool:
        raise NotImplementedError


def refused(found: tuple[int, dict[str, Any]]) -> bool:
    status, body = found
    return status == 503 and "Error 111" in body["checks"]["redis"]["detail"]


async def test_readiness_fails_naming_redis_when_redis_goes_away(
    topics: Settings, tmp_path: Path
) -> None:
    # A redis-server of this test's own (the shared one must not be paused).
    with redis_server(tmp_path) as (port, server):
        on_private = topics.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
        async with launched(on_private, ["timers"], tmp_path) as stack:
            url = stack.ops_url("timers")
            _, body = await until(readiness_of(url), lambda found: found[0] == 200, within=60)
            assert body["checks"]["redis"] == {"ok": True, "detail": "PING answered"}

            server.kill()
            await asyncio.to_thread(server.wait)

            # The first PING may find its connection closed; the next ones are refused.
            _, body = await until(readiness_of(url), refused, within=60)
            assert body["ok"] is False
            assert body["checks"]["redis"]["ok"] is False, body
            detail = body["checks"]["redis"]["detail"]
            assert detail.startswith(f"PING failed: Error 111 connecting to 127.0.0.1:{port}.")
            # Only Redis is away: the other checks still pass, and the process is alive.
            assert body["checks"]["kafka"]["ok"] is True, body
            assert body["checks"]["loop"]["ok"] is True, body
            health = await _get(f"{url}/healthz")
            assert health.status_code == 200
            said = await asyncio.to_thread(readiness, url)
            assert said == f"not ready: redis ({detail})", said
            assert "kafka" not in said
            assert "loop" not in said


async def test_a_taken_ops_port_fails_start_up_naming_its_setting(
    settings: Settings, tmp_path: Path
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {
            **os.environ,
            **environment(settings.model_copy(update={"home": tmp_path})),
            "SWITCHYARD_ENGINE_OPS_PORT": str(port),
        }
        engine = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchyard.cli.main", "engine",
            "--ready-file", str(tmp_path / "engine.ready"),
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(engine.communicate(), 90)
    assert engine.returncode == 2
    message = stderr.decode()
    assert f"the ops port 127.0.0.1:{port} is taken" in message, message
    assert "set SWITCHYARD_ENGINE_OPS_PORT to a free port" in message, message
    assert not (tmp_path / "engine.ready").exists()


async def test_a_member_beyond_the_partition_count_is_ready_once_it_has_joined(
    topics: Settings,
) -> None:
    # The dead-letter topic has one partition: of two members, one holds it.
    topic = TopicRegistry.from_settings(topics).dead_letter.name
    group = f"test-readiness-{uuid.uuid4().hex[:8]}"
    members = [
        AIOKafkaConsumer(topic, bootstrap_servers=topics.kafka_bootstrap_servers, group_id=group)
        for _ in range(2)
    ]
    assert member_finding(members[0], topic) == Check.failed(
        f"assigned 0 partitions of {topic}: not yet joined the group"
    )
    try:
        for member in members:
            await member.start()

        async def findings() -> list[Check]:
            await asyncio.gather(*(m.getmany(timeout_ms=100) for m in members))
            return sorted((member_finding(m, topic) for m in members), key=lambda c: c.detail)

        def settled(found: list[Check]) -> bool:
            return sorted(len(m.assignment()) for m in members) == [0, 1] and all(
                c.ok for c in found
            )

        found = await until(findings, settled, within=60)
        assert found == [
            Check.passed(f"assigned 1 partition of {topic}: [0]"),
            Check.passed(
                f"joined the group, assigned 0 partitions of {topic}: the group has more "
                "members than the topic has partitions"
            ),
        ]
    finally:
        for member in members:
            await member.stop()
