"""Entities and workflows together on the real stack: an entity update through the API
starts exactly one run of a matching event-triggered workflow (and none of another),
that run's UPSERT_ENTITY writes an entity whose event is on the topic, and a workflow
that re-triggers itself through its own writes stops at the chain's maximum depth."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from switchyard.consumers.entities import EntityService
from switchyard.engine.service import EngineService
from switchyard.engine.store.client import redis_client
from switchyard.engine.trigger_matcher import TriggerMatcher
from switchyard.schemas.entities import EntityEvent
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.reader import read_topic
from switchyard.topics.registry import TopicRegistry
from tests.bridge.support import Api, runs_of
from tests.helpers import until

pytestmark = pytest.mark.integration


@pytest.fixture
async def entity_executor(bridge_settings: Settings) -> AsyncIterator[EntityService]:
    client = redis_client(bridge_settings)
    async with EventProducer(bridge_settings) as producer:
        service = EntityService(bridge_settings, producer, client, lambda: datetime.now(UTC))
        await service.loop.start()
        task = asyncio.create_task(service.loop.run())
        try:
            yield service
        finally:
            service.loop.stop_soon()
            await task
            await service.loop.stop()
    await client.aclose()


async def events_of(settings: Settings, entity_key: str) -> list[EntityEvent]:
    topic = TopicRegistry.from_settings(settings).entity_events.name
    records = await read_topic(settings, topic)
    return [
        EntityEvent.model_validate_json(r.value or b"")
        for r in records
        if r.key == entity_key.encode()
    ]


async def define_blueprint(api: Api, identifier: str) -> None:
    body = {"identifier": identifier, "title": "Service",
            "schema": {"properties": {"tier": {"type": "string"}, "round": {"type": "number"},
                                      "copiedFrom": {"type": "string"}}}}  # fmt: skip
    response = await api.call("POST", "/v1/blueprints", json=body)
    assert response.status_code == 201, response.text


async def write(api: Api, blueprint: str, body: dict[str, Any], **query: str) -> dict[str, Any]:
    response = await api.call("POST", f"/v1/blueprints/{blueprint}/entities", json=body,
                              params=query)  # fmt: skip
    assert response.status_code in (200, 201), response.text
    entity: dict[str, Any] = response.json()["entity"]
    return entity


def trigger(kind: str, blueprint: str) -> dict[str, Any]:
    event = {"type": kind, "blueprintIdentifier": blueprint}
    return {"identifier": "trigger", "config": {"type": "EVENT_TRIGGER", "event": event}}


def upsert(blueprint: str, mapping: dict[str, Any]) -> dict[str, Any]:
    return {"identifier": "write", "config": {
        "type": "UPSERT_ENTITY", "blueprintIdentifier": blueprint, "mapping": mapping}}  # fmt: skip


def workflow(identifier: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    edge = {"sourceIdentifier": "trigger", "targetIdentifier": "write"}
    return {"identifier": identifier, "nodes": list(nodes), "connections": [edge]}


async def test_an_api_update_starts_one_run_whose_upsert_writes_an_entity(
    api: Api, engine: EngineService, matcher: TriggerMatcher, entity_executor: EntityService,
    bridge_settings: Settings,
) -> None:  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    blueprint, copies = f"service-{tag}", f"copy-{tag}"
    await define_blueprint(api, blueprint)
    await define_blueprint(api, copies)
    on_update, on_delete = f"on-update-{tag}", f"on-delete-{tag}"
    await api.define(workflow(on_update, trigger("ENTITY_UPDATED", blueprint), upsert(copies, {
        "identifier": "{{ .outputs.trigger.context.entityIdentifier }}-copy",
        "properties": {"tier": "{{ .outputs.trigger.diff.after.properties.tier }}",
                       "copiedFrom": "{{ .outputs.trigger.context.entityIdentifier }}"},
    })))  # fmt: skip
    await api.define(workflow(on_delete, trigger("ENTITY_DELETED", blueprint),
                              upsert(copies, {"identifier": "never"})))  # fmt: skip
    await write(api, blueprint, {"identifier": "svc-a", "properties": {"tier": "bronze"}})
    await write(api, blueprint, {"identifier": "svc-a", "properties": {"tier": "gold"}},
                upsert="true", merge="true")  # fmt: skip
    [run_id] = await until(lambda: runs_of(api, on_update))
    run = await until(lambda: api.run(run_id), lambda r: r["status"] == "COMPLETED")
    assert run["result"] == "SUCCESS", run
    written = run["variables"]["outputs"]["write"]["response"]["data"]
    assert (written["identifier"], written["blueprint"]) == ("svc-a-copy", copies)
    assert written["properties"] == {"tier": "gold", "copiedFrom": "svc-a"}
    stored = await api.call("GET", f"/v1/blueprints/{copies}/entities/svc-a-copy")
    assert stored.json()["entity"]["properties"] == written["properties"]
    [copy_event] = await until(lambda: events_of(bridge_settings, f"{copies}/svc-a-copy"))
    assert copy_event.action == "CREATE"
    assert copy_event.origin is not None
    assert (copy_event.origin.workflow_run_identifier, copy_event.origin.depth) == (run_id, 1)
    assert copy_event.by == run_id
    # The API's update event delivered a second time starts no second run.
    source_events = await events_of(bridge_settings, f"{blueprint}/svc-a")
    update = next(e for e in source_events if e.action == "UPDATE")
    topic = TopicRegistry.from_settings(bridge_settings).entity_events.name
    async with EventProducer(bridge_settings) as producer:
        await producer.send_and_wait(topic, update.key(), update.model_dump_json().encode())
    await until(lambda: _copies(matcher, update.id), lambda copies: copies == 2)
    assert await runs_of(api, on_update) == [run_id]
    assert await runs_of(api, on_delete) == []


async def _copies(matcher: TriggerMatcher, event_id: str) -> int:
    return sum(1 for seen in matcher.counts.handled if seen == event_id)


async def test_a_workflow_that_retriggers_itself_stops_at_the_maximum_depth(
    api: Api, engine: EngineService, matcher: TriggerMatcher, entity_executor: EntityService,
    bridge_settings: Settings,
) -> None:  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    blueprint, loop = f"counter-{tag}", f"loop-{tag}"
    await define_blueprint(api, blueprint)
    await api.define(workflow(loop, trigger("ENTITY_UPDATED", blueprint), upsert(blueprint, {
        "identifier": "{{ .outputs.trigger.context.entityIdentifier }}",
        "properties": {"round": "{{ .outputs.trigger.diff.after.properties.round + 1 }}"},
    })))  # fmt: skip
    await write(api, blueprint, {"identifier": "c", "properties": {"round": 0}})
    await write(api, blueprint, {"identifier": "c", "properties": {"round": 1}},
                upsert="true", merge="true")  # fmt: skip
    limit = bridge_settings.trigger_max_depth
    refusal = await until(lambda: _refusal(matcher, loop), within=60)
    assert refusal is not None
    assert "chain too deep" in refusal
    runs = await runs_of(api, loop)
    assert len(runs) == limit
    entity = (await api.call("GET", f"/v1/blueprints/{blueprint}/entities/c")).json()["entity"]
    assert entity["properties"]["round"] == 1 + limit  # one write per run, then it stopped
    depths = sorted(e.origin.depth for e in await events_of(bridge_settings, f"{blueprint}/c")
                    if e.origin is not None)  # fmt: skip
    assert depths == list(range(1, limit + 1))


async def _refusal(matcher: TriggerMatcher, workflow: str) -> str | None:
    return next((r for r in matcher.counts.refusals if workflow in r), None)
