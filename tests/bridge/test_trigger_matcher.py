"""The trigger matcher on real Kafka and Redis with the engine: entity events start
exactly one run per matching EVENT_TRIGGER, also when an event is delivered twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from switchyard.engine.service import EngineService
from switchyard.engine.trigger_matcher import TriggerMatcher
from switchyard.schemas.entities import EntityEvent
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.bridge.support import Api, runs_of
from tests.helpers import until

pytestmark = pytest.mark.integration


def on_event(identifier: str, blueprint: str, kind: str, condition: list[str] | None = None
             ) -> dict[str, Any]:  # fmt: skip
    event = {"type": kind, "blueprintIdentifier": blueprint}
    trigger: dict[str, Any] = {"type": "EVENT_TRIGGER", "event": event}
    if condition:
        trigger["condition"] = {"type": "JQ", "expressions": condition}
    return {
        "identifier": identifier,
        "nodes": [
            {"identifier": "trigger", "config": trigger},
            {"identifier": "work", "config": {"type": "KAFKA",
             "payload": {"tier": "{{ .outputs.trigger.diff.after.properties.tier }}"}}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
    }  # fmt: skip


def entity_event(blueprint: str, event_id: str, tier: str, origin_depth: int | None = None
                 ) -> EntityEvent:  # fmt: skip
    after = {"identifier": "svc-a", "blueprint": blueprint, "properties": {"tier": tier}}
    data: dict[str, Any] = {
        "id": event_id, "action": "UPDATE",
        "diff": {"before": {**after, "properties": {"tier": "bronze"}}, "after": after},
        "context": {"blueprintIdentifier": blueprint, "entityIdentifier": "svc-a"},
        "by": "admin@example.com", "at": datetime.now(UTC).isoformat(),
    }  # fmt: skip
    if origin_depth is not None:
        data["origin"] = {"workflowIdentifier": "writer", "workflowRunIdentifier":
                          "wfr_0000000000000000", "nodeRunIdentifier": "wfnr_0000000000000000",
                          "depth": origin_depth}  # fmt: skip
    return EntityEvent.model_validate(data)


async def publish(settings: Settings, event: EntityEvent) -> None:
    topic = TopicRegistry.from_settings(settings).entity_events.name
    async with EventProducer(settings) as producer:
        await producer.send_and_wait(topic, event.key(), event.model_dump_json().encode())


async def test_an_entity_event_starts_one_run_of_each_matching_trigger(
    api: Api, engine: EngineService, matcher: TriggerMatcher, bridge_settings: Settings,
) -> None:  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    blueprint = f"service-{tag}"
    matching, conditioned, other_kind, other_bp = (f"{n}-{tag}" for n in "abcd")
    await api.define(on_event(matching, blueprint, "ENTITY_UPDATED"))
    await api.define(on_event(conditioned, blueprint, "ANY_ENTITY_CHANGE",
                              ['.diff.after.properties.tier == "gold"']))  # fmt: skip
    await api.define(on_event(other_kind, blueprint, "ENTITY_CREATED"))
    await api.define(on_event(other_bp, f"team-{tag}", "ENTITY_UPDATED"))
    silver = entity_event(blueprint, f"ev-{tag}-1", "silver")
    await publish(bridge_settings, silver)
    await publish(bridge_settings, silver)  # delivered twice: still one run
    await until(lambda: handled(matcher, silver.id), lambda copies: copies == 2)
    [run_id] = await until(lambda: runs_of(api, matching))
    run = await api.run(run_id)
    assert run["createdBy"] == bridge_settings.automation_actor
    trigger = next(nr for nr in run["nodeRuns"] if nr["node"]["identifier"] == "trigger")
    assert trigger["output"]["action"] == "UPDATE"
    assert trigger["output"]["diff"]["after"]["properties"] == {"tier": "silver"}
    assert trigger["output"]["context"] == {"blueprintIdentifier": blueprint,
                                            "entityIdentifier": "svc-a"}  # fmt: skip
    assert run["variables"]["outputs"]["trigger"] == trigger["output"]
    gold = entity_event(blueprint, f"ev-{tag}-2", "gold")
    await publish(bridge_settings, gold)
    [gold_run] = await until(lambda: runs_of(api, conditioned))
    assert len(await until(lambda: runs_of(api, matching), lambda ids: len(ids) >= 2)) == 2
    assert await runs_of(api, other_kind) == []
    assert await runs_of(api, other_bp) == []
    assert await runs_of(api, conditioned) == [gold_run]  # silver did not meet it


async def handled(matcher: TriggerMatcher, event_id: str) -> int:
    """How many copies of the event the matcher has handled (other tests of the session
    put their entity events on the same topic)."""
    return sum(1 for seen in matcher.counts.handled if seen == event_id)


async def refusal_of(matcher: TriggerMatcher, event_id: str) -> str | None:
    return next((r for r in matcher.counts.refusals if event_id in r), None)


async def test_a_chain_past_the_maximum_depth_is_refused_with_its_reason(
    api: Api, engine: EngineService, matcher: TriggerMatcher, bridge_settings: Settings,
) -> None:  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    blueprint, workflow = f"service-{tag}", f"deep-{tag}"
    await api.define(on_event(workflow, blueprint, "ENTITY_UPDATED"))
    limit = bridge_settings.trigger_max_depth
    await publish(bridge_settings, entity_event(blueprint, f"ev-{tag}-ok", "x", limit - 1))
    [run_id] = await until(lambda: runs_of(api, workflow))
    await publish(bridge_settings, entity_event(blueprint, f"ev-{tag}-deep", "x", limit))
    refusal = await until(lambda: refusal_of(matcher, f"ev-{tag}-deep"))
    assert refusal is not None
    assert "chain too deep" in refusal
    assert f"at most {limit}" in refusal
    assert await runs_of(api, workflow) == [run_id]
