"""The entity executor: UPSERT_ENTITY runs through the real engine and executor on
Kafka and Redis, once per node run (a redelivered request writes nothing and emits no
second event), and a value the blueprint refuses fails the node naming it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from switchyard.consumers.context import NodeLogger
from switchyard.consumers.entities import EntityExecutor, EntityService
from switchyard.engine.machine.state import RunState
from switchyard.engine.store.entities import EntityStore, WriteBy
from switchyard.engine.store.entity_outbox import EntityEventPublisher
from switchyard.engine.store.runs import RunStore
from switchyard.schemas import EntityRequest
from switchyard.schemas.entities import EntityEvent
from switchyard.schemas.entity_rules import (
    BlueprintInput,
    EntityInput,
    node_entity_identifier,
    node_event_id,
)
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.helpers import until
from tests.integration.engine_support import Driver, read_all

pytestmark = pytest.mark.integration


@asynccontextmanager
async def _executor(
    settings: Settings, producer: EventProducer, redis: aioredis.Redis, group: str
) -> AsyncIterator[EntityService]:
    """An entity executor (a fresh process, as far as its memory goes) in ``group``."""
    mine = settings.model_copy(update={"engine_group": group})
    service = EntityService(mine, producer, redis, lambda: datetime.now(UTC))
    async with service.loop:
        yield service


async def _blueprint(redis: aioredis.Redis, producer: EventProducer, settings: Settings) -> str:
    identifier = f"svc-{uuid.uuid4().hex[:8]}"
    body = BlueprintInput.model_validate({
        "identifier": identifier,
        "schema": {"properties": {"lang": {"type": "string", "enum": ["python", "go"]},
                                  "run": {"type": "string"}},
                   "required": ["lang"]},
    })  # fmt: skip
    await _store(redis, producer, settings).create_blueprint(body, "tests", datetime.now(UTC))
    return identifier


def _store(redis: aioredis.Redis, producer: EventProducer, settings: Settings) -> EntityStore:
    topic = TopicRegistry.from_settings(settings).entity_events.name
    return EntityStore(redis, EntityEventPublisher(redis, producer, topic))


async def _workflow(driver: Driver, blueprint: str, properties: dict[str, Any]) -> str:
    identifier = f"ent-{uuid.uuid4().hex[:6]}"
    upsert = {"type": "UPSERT_ENTITY", "blueprintIdentifier": blueprint,
              "mapping": {"title": "Made by {{ .workflowRun.identifier }}", "team": "dev",
                          "properties": properties}}  # fmt: skip
    await driver.define({
        "identifier": identifier,
        "nodes": [{"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
                  {"identifier": "upsert", "config": upsert}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "upsert"}],
    })  # fmt: skip
    return identifier


async def _events(settings: Settings, key: str) -> list[EntityEvent]:
    records = await read_all(settings, TopicRegistry.from_settings(settings).entity_events.name)
    return [EntityEvent.model_validate(orjson.loads(r.value)) for r in records
            if r.key == key.encode()]  # fmt: skip


async def _requests(settings: Settings, run_id: str) -> list[Any]:
    records = await read_all(settings, TopicRegistry.from_settings(settings).entity_requests.name)
    return [r for r in records if r.key == run_id.encode()]


def _done(state: RunState) -> bool:
    return state.status == "COMPLETED"


@pytest.mark.usefixtures("engine")
async def test_an_upsert_node_writes_once_even_when_its_request_comes_twice(
    topics: Settings, driver: Driver, redis: aioredis.Redis, producer: EventProducer
) -> None:
    blueprint = await _blueprint(redis, producer, topics)
    workflow = await _workflow(driver, blueprint,
                               {"lang": "go", "run": "{{ .workflowRun.identifier }}"})  # fmt: skip
    group = f"entity-tests-{uuid.uuid4().hex[:8]}"
    async with _executor(topics, producer, redis, group) as first:
        run_id = await driver.trigger(workflow, {})
        state = await driver.wait(run_id, _done)
    node_run = state.node_run_of("upsert")
    assert node_run is not None
    assert (state.result, node_run.result) == ("SUCCESS", "SUCCESS")
    identifier = node_entity_identifier(node_run.id)  # none in the mapping
    stored = await _store(redis, producer, topics).get(blueprint, identifier)
    assert stored is not None
    assert stored.properties == {"lang": "go", "run": run_id}
    assert (stored.title, stored.team, stored.created_by) == (f"Made by {run_id}", ["dev"], run_id)
    entity = stored.model_dump(mode="json")
    assert state.outputs["upsert"] == {"response": {"data": entity}}
    assert first.executor.writes == 1

    key = f"{blueprint}/{identifier}"
    [event] = await until(lambda: _events(topics, key), lambda found: bool(found))
    assert event.id == node_event_id(node_run.id)
    assert (event.action, event.by, event.diff.before, event.diff.after) == (
        "CREATE",
        run_id,
        None,
        entity,
    )
    assert event.origin is not None
    assert event.origin.model_dump() == {
        "workflowIdentifier": workflow,
        "workflowRunIdentifier": run_id,
        "nodeRunIdentifier": node_run.id,
        "depth": 0,
    }

    # Someone else changes the entity; then the same request comes again, to an
    # executor that never saw it (a restart, a rebalance). Writing it again would put
    # lang back to go and emit a third event.
    other = WriteBy(by="someone", event_id=f"evt_{uuid.uuid4().hex}", now=datetime.now(UTC))
    changed = await _store(redis, producer, topics).upsert(
        blueprint, EntityInput(properties={"lang": "python"}), identifier, other, merge=True
    )
    [request] = await _requests(topics, run_id)
    await producer.send_and_wait(request.topic, request.key, request.value)
    async with _executor(topics, producer, redis, group) as second:
        await until(lambda: _value(second.loop.completed), lambda n: n >= 1)
    assert second.executor.writes == 0  # it handled the request and wrote nothing
    again = await _store(redis, producer, topics).get(blueprint, identifier)
    assert again == changed.entity
    events = await until(lambda: _events(topics, key), lambda found: len(found) >= 2)
    assert [(e.action, e.by) for e in events] == [("CREATE", run_id), ("UPDATE", "someone")]


async def _value(number: int) -> int:
    return number


def _request(blueprint: str, entity: dict[str, Any]) -> EntityRequest:
    node_run = f"wfnr_{uuid.uuid4().hex[:16]}"
    return EntityRequest.model_validate({
        "blueprintIdentifier": blueprint, "entity": entity, "depth": 3,
        "context": {"workflowIdentifier": "wf-ent", "workflowRunId": "wfr_EntTest000000001",
                    "nodeRunId": node_run, "nodeIdentifier": "upsert", "runId": node_run},
    })  # fmt: skip


async def test_a_replayed_request_returns_the_first_write_and_merges_only_given_keys(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer
) -> None:
    blueprint = await _blueprint(redis, producer, topics)
    executor = EntityExecutor(_store(redis, producer, topics), lambda: datetime.now(UTC))
    log = NodeLogger(lambda: datetime.now(UTC), "wfnr_x")
    first = _request(blueprint, {"identifier": "api", "properties": {"lang": "go", "run": "a"}})
    created = await executor.execute(first, log)
    assert created.result == "SUCCESS"
    merge = _request(blueprint, {"identifier": "api", "properties": {"run": "b"}})
    merged = await executor.execute(merge, log)
    assert merged.output is not None
    assert merged.output["response"]["data"]["properties"] == {"lang": "go", "run": "b"}
    assert await executor.execute(first, log) == created  # the stored write, not a third
    assert executor.writes == 2
    events = await until(lambda: _events(topics, f"{blueprint}/api"), lambda e: len(e) >= 2)
    assert [(e.action, e.origin.depth if e.origin else None) for e in events] == [
        ("CREATE", 3),
        ("UPDATE", 3),
    ]


async def test_a_missing_blueprint_fails_the_node(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer
) -> None:
    executor = EntityExecutor(_store(redis, producer, topics), lambda: datetime.now(UTC))
    log = NodeLogger(lambda: datetime.now(UTC), "wfnr_x")
    outcome = await executor.execute(_request("no-such-bp", {"properties": {}}), log)
    assert outcome.result == "FAILED"
    assert outcome.output == {
        "error": {"message": "blueprintIdentifier: blueprint no-such-bp does not exist"}
    }
    assert [line.log_level for line in log.lines] == ["ERROR"]


@pytest.mark.usefixtures("engine")
async def test_a_value_the_blueprint_refuses_fails_the_node_naming_it(
    topics: Settings, driver: Driver, redis: aioredis.Redis, producer: EventProducer
) -> None:
    blueprint = await _blueprint(redis, producer, topics)
    workflow = await _workflow(driver, blueprint, {"lang": "rust"})
    async with _executor(topics, producer, redis, f"entity-tests-{uuid.uuid4().hex[:8]}"):
        run_id = await driver.trigger(workflow, {})
        state = await driver.wait(run_id, _done)
    node_run = state.node_run_of("upsert")
    assert node_run is not None
    assert (state.result, node_run.result) == ("FAILED", "FAILED")
    message = (
        f"mapping.properties.lang: must be one of python, go (got 'rust') (blueprint {blueprint})"
    )
    assert node_run.output == {"error": {"message": message}}
    logs = await RunStore(redis).logs(run_id, [node_run.id])
    assert [(line.log_level, line.log) for line in logs[node_run.id]][-1] == ("ERROR", message)
