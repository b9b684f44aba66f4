"""The executor process killed (SIGKILL) with a batch of webhook calls in hand: the
restarted process calls them again and every node run is reported; nothing of the
batch was committed before its reports."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from switchyard.cli.stack.full import environment
from switchyard.schemas import WebhookRequest, encode
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.helpers import LocalHandler, private_redis_db, serving, until
from tests.integration.engine_support import consume, new_run_id

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCH = 5


class _Holding(LocalHandler):
    """Records each call's Idempotency-Key; holds it until ``release`` is set."""

    release: threading.Event

    def do_POST(self) -> None:
        self.body()
        self.record(self.headers.get("Idempotency-Key"))
        released = self.release.wait(30)
        self.answer(200 if released else 500, {"ok": released})


@pytest.fixture
def mine(topics: Settings, session_tag: str, tmp_path: Path) -> Settings:
    """A Redis database, consumer group and executor instance id of the test's own."""
    settings = private_redis_db(topics, session_tag)
    return settings.model_copy(update={
        "engine_group": f"kill-exec-{uuid.uuid4().hex[:8]}", "home": tmp_path,
        "executor_instance_id": f"kill-exec-{uuid.uuid4().hex[:8]}", "executor_ops_port": 0,
    })  # fmt: skip


@pytest.fixture
async def spawn(mine: Settings, tmp_path: Path) -> AsyncIterator[Callable[[], Any]]:
    """Starts ``switchyard executor`` (waits until ready); kills what is left at the end."""
    started: list[asyncio.subprocess.Process] = []

    async def start() -> asyncio.subprocess.Process:
        ready = tmp_path / f"executor-{len(started)}.ready"
        env = {**os.environ, **environment(mine)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchyard.cli.main", "executor", "--ready-file", str(ready),
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        started.append(process)

        async def up() -> bool:
            return ready.exists() or process.returncode is not None

        await until(up, within=60)
        assert process.returncode is None, "the executor exited during start-up"
        return process

    yield start
    for process in started:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_batch_in_hand_when_the_executor_is_killed_is_called_again_and_reported(
    mine: Settings, producer: EventProducer, spawn: Callable[[], Any]
) -> None:
    handler: type[_Holding] = type("Holding", (_Holding,), {"release": threading.Event()})
    with serving(handler) as (url, seen):
        run_id = new_run_id()  # one partition: one batch
        requests = [_request(f"{url}/hook", run_id) for _ in range(BATCH)]
        topic = TopicRegistry.from_settings(mine).webhook_requests.name
        for request in requests:
            await producer.send_and_wait(topic, run_id, encode(request))
        first = await spawn()

        async def calls() -> int:
            return len(seen)

        await until(calls, lambda n: n >= BATCH, within=60)  # the whole batch in hand
        first.kill()
        await first.wait()
        handler.release.set()
        await spawn()  # same instance id: it gets the partitions back at once
        reports = await _reports(mine, requests)
    assert sorted(reports) == sorted(r.context.node_run_id for r in requests)
    assert {r["result"] for r in reports.values()} == {"SUCCESS"}
    # Each node run was called before the kill and again after it: redelivered.
    for request in requests:
        assert seen.count(request.context.node_run_id) >= 2


def _request(url: str, run_id: str) -> WebhookRequest:
    node_run = f"wfnr_{uuid.uuid4().hex[:16]}"
    return WebhookRequest.model_validate({
        "url": url, "method": "POST", "body": {"n": 1},
        "context": {"workflowIdentifier": "wf-kill", "workflowRunId": run_id,
                    "nodeRunId": node_run, "nodeIdentifier": "call", "runId": node_run},
    })  # fmt: skip


async def _reports(settings: Settings, requests: list[WebhookRequest]) -> dict[str, Any]:
    """The first report of each request on the inbox, by node-run id."""
    wanted = {r.context.node_run_id for r in requests}
    inbox = TopicRegistry.from_settings(settings).inbox.name
    reports: dict[str, Any] = {}

    def first_of_each(record: Any) -> bool:
        body = orjson.loads(record.value)
        if body.get("nodeRunId") not in wanted or body["nodeRunId"] in reports:
            return False
        reports[body["nodeRunId"]] = body
        return True

    await consume(settings, inbox, len(wanted), first_of_each, within=60)
    return reports
