"""``switchyard executor`` hosts the entity executor and the outbox relay: as a real
process it completes an UPSERT_ENTITY request on the inbox, publishes an entity
event a crashed writer left in the outbox, and exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from switchyard.cli.stack.full import environment
from switchyard.engine.store import keys
from switchyard.engine.store.entities import EntityStore, WriteBy
from switchyard.engine.store.entity_outbox import EntityEventPublisher
from switchyard.schemas import EntityRequest, decode_inbox, encode
from switchyard.schemas.entities import EntityEvent
from switchyard.schemas.entity_rules import BlueprintInput, EntityInput
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.helpers import private_redis_db, until
from tests.integration.engine_support import read_all

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings, session_tag: str) -> Settings:
    """A Redis database of this session's own: the process's relay takes every old
    outbox entry of its database."""
    mine = private_redis_db(settings, session_tag)
    return mine.model_copy(update={"engine_group": f"exec-proc-{uuid.uuid4().hex[:8]}"})


class _CutOff(EntityEventPublisher):
    """A writer that dies between its Redis write and its publish."""

    async def publish(self, event: EntityEvent) -> bool:
        return False


@pytest.fixture
async def executor_process(
    topics: Settings, tmp_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {**os.environ, **environment(topics.model_copy(update={"home": tmp_path}))}
    ready, log = tmp_path / "executor.ready", tmp_path / "executor.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchyard.cli.main", "executor", "--ready-file", str(ready),
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    try:
        await until(lambda: asyncio.sleep(0, ready.exists() or process.returncode is not None),
                    within=60)  # fmt: skip
        assert process.returncode is None, log.read_text()[-2000:]
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_executor_process_writes_entities_and_relays_left_over_events(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer,
    executor_process: asyncio.subprocess.Process,
) -> None:  # fmt: skip
    registry = TopicRegistry.from_settings(topics)
    crashing = EntityStore(redis, _CutOff(redis, producer, registry.entity_events.name))
    blueprint = f"bp-{uuid.uuid4().hex[:8]}"
    schema = {"properties": {"n": {"type": "number"}}}
    body = BlueprintInput.model_validate({"identifier": blueprint, "schema": schema})
    await crashing.create_blueprint(body, "tests", datetime.now(UTC))
    who = WriteBy(by="tests", event_id=f"evt_{uuid.uuid4().hex}", now=datetime.now(UTC))
    await crashing.upsert(blueprint, EntityInput(properties={"n": 1}), "left", who, merge=True)

    run_id, node_run = f"wfr_{uuid.uuid4().hex[:16]}", f"wfnr_{uuid.uuid4().hex[:16]}"
    request = EntityRequest.model_validate({
        "blueprintIdentifier": blueprint, "entity": {"identifier": "made", "properties": {"n": 2}},
        "context": {"workflowIdentifier": "wf", "workflowRunId": run_id, "nodeRunId": node_run,
                    "nodeIdentifier": "upsert", "runId": node_run},
    })  # fmt: skip
    await producer.send_and_wait(registry.entity_requests.name, run_id, encode(request))

    async def reports() -> list[dict[str, object]]:
        records = await read_all(topics, registry.inbox.name)
        found = [decode_inbox(r.value) for r in records if r.key == run_id.encode()]
        return [event.model_dump(mode="json") for event in found]

    [update] = await until(reports, bool, within=30)
    assert update["nodeRunId"] == node_run
    assert update["result"] == "SUCCESS"

    async def events() -> list[str]:
        records = await read_all(topics, registry.entity_events.name)
        wanted = (f"{blueprint}/left".encode(), f"{blueprint}/made".encode())
        return [orjson.loads(r.value)["id"] for r in records if r.key in wanted]

    # The node's own event at once; the crashed writer's once the relay finds it (5 s).
    found = await until(events, lambda ids: who.event_id in ids, within=30)
    assert sorted(found) == sorted([who.event_id, f"evt_{node_run}"])
    assert not await redis.hexists(keys.entity_outbox(blueprint), who.event_id)

    executor_process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(executor_process.wait(), 30) == 0
