"""A worker killed with SIGKILL mid-handler: its node run goes to another worker and
is completed exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from switchyard.cli.stack.full import environment
from switchyard.consumers import KafkaWorker, WorkContext
from switchyard.schemas import node_run_id
from switchyard.schemas.settings import Settings
from tests.helpers import until
from tests.integration.engine_support import Driver, read_all

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("engine")]

REPO = Path(__file__).resolve().parents[2]
SESSION_MS = 6000  # the broker's smallest session timeout: how soon a dead member is dropped


def _workflow(identifier: str) -> dict[str, object]:
    return {"identifier": identifier, "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "work", "config": {"type": "KAFKA", "payload": {"job": 1}}},
    ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}]}  # fmt: skip


def _spawn(settings: Settings, workflow: str, group: str, markers: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        # The session's brokers, as the settings reach them (TLS, SASL on a secured one).
        **{k: v for k, v in environment(settings).items() if k.startswith("SWITCHYARD_KAFKA_")},
        "SWITCHYARD_TOPIC_PREFIX": settings.topic_prefix,
        "SDK_TEST_MARKERS": str(markers),
    }
    command = [sys.executable, "-m", "switchyard.cli.main", "worker", "run",
               "tests.consumers.handlers:hang", "--node-type", "KAFKA", "--workflow", workflow,
               "--group", group, "--session-timeout-ms", str(SESSION_MS)]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL)


async def test_killed_worker_node_run_is_redelivered_and_completed_once(
    topics: Settings, driver: Driver, tmp_path: Path
) -> None:
    workflow = f"kill-{uuid.uuid4().hex[:6]}"
    group = f"kill-group-{uuid.uuid4().hex[:6]}"
    await driver.define(_workflow(workflow))
    run_id = await driver.trigger(workflow, {})
    work_id = node_run_id(run_id, "work")

    first = _spawn(topics, workflow, group, tmp_path)
    try:
        marker = tmp_path / work_id
        await until(lambda: _exists(marker, first), within=60)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == -signal.SIGKILL

    calls: list[str] = []

    async def finish(ctx: WorkContext) -> dict[str, str]:
        calls.append(ctx.node_run_id)
        ctx.log.info("finished by the second worker")
        return {"by": "second"}

    async with KafkaWorker(topics, finish, workflows=[workflow], group=group,
                           session_timeout_ms=SESSION_MS):  # fmt: skip
        state = await driver.wait(run_id, lambda s: s.status == "COMPLETED", within=60)
    assert state.result == "SUCCESS"
    assert calls == [work_id]
    assert state.outputs["work"] == {"by": "second"}
    events = [
        orjson.loads(r.value) for r in await read_all(topics, driver.registry.run_events.name)
    ]
    completions = [
        e for e in events if e["nodeRunId"] == work_id and e["kind"] == "nodeRun.completed"
    ]
    assert len(completions) == 1
    logs = await driver.runs.logs(run_id, [work_id])
    assert [e.log for e in logs[work_id]].count("finished by the second worker") == 1


async def _exists(marker: Path, worker: subprocess.Popen[bytes]) -> bool:
    assert worker.poll() is None, f"the worker exited with {worker.returncode}"
    return await asyncio.to_thread(marker.exists)
