"""The trigger matcher outlives Redis going away, and reads the failed batch again.

Seen in the chaos run: a ``kill -9`` of Redis ended the matcher process (redis-py's
ConnectionError is no OSError, so its loop did not catch it), and 40 entity events
never became runs. Caught, the batch must still be read again: the consumer's
position is past it, and the next batch's commit would skip it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import ConsumerRecord
from redis.exceptions import ConnectionError as RedisConnectionError

from switchyard.engine.store.workflows import WorkflowStore
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.engine.trigger_matcher import TriggerMatcher
from switchyard.schemas import RunTriggered, derived_run_id, parse_workflow
from switchyard.schemas.entities import EntityEvent
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.reader import read_topic
from switchyard.topics.registry import TopicRegistry

pytestmark = pytest.mark.integration


def _event(blueprint: str) -> EntityEvent:
    after = {"identifier": "svc-a", "blueprint": blueprint, "properties": {}}
    return EntityEvent.model_validate({
        "id": f"evt_{uuid.uuid4().hex}", "action": "CREATE",
        "diff": {"before": None, "after": after},
        "context": {"blueprintIdentifier": blueprint, "entityIdentifier": "svc-a"},
        "by": "tests", "at": datetime.now(UTC).isoformat(),
    })  # fmt: skip


class _CutOnce(TriggerMatcher):
    """The matcher, whose batch holding event ``cut_at`` first finds Redis gone, as
    the chaos run's Redis kill left it (the records fetched, nothing matched)."""

    cut_at = ""
    cuts = 0

    async def handle(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[RunTriggered]:
        if not self.cuts and any(self.cut_at.encode() in (r.value or b"") for r in records):
            self.cuts += 1
            raise RedisConnectionError("Connection closed by server.")
        return await super().handle(records)


async def _inbox_has(settings: Settings, run_id: str, within: float = 60.0) -> None:
    inbox = TopicRegistry.from_settings(settings).inbox.name
    deadline = asyncio.get_running_loop().time() + within
    while True:
        records = await read_topic(settings, inbox)
        if any(r.key == run_id.encode() for r in records):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no RunTriggered {run_id} on {inbox} in {within:.0f} s")
        await asyncio.sleep(0.5)


async def test_a_batch_cut_off_by_a_redis_restart_is_matched_once_redis_is_back(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer,
) -> None:  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    blueprint, workflow = f"outage-{tag}", f"on-outage-{tag}"
    settings = topics.model_copy(update={"triggers_group": f"triggers-{tag}"})
    definition = parse_workflow({"identifier": workflow, "nodes": [
        {"identifier": "trigger", "config": {"type": "EVENT_TRIGGER", "event": {
            "type": "ENTITY_CREATED", "blueprintIdentifier": blueprint}}},
        {"identifier": "seen", "config": {"type": "CONDITION", "outlets": [
            {"identifier": "yes", "title": "Yes", "expression": "true"}]}},
    ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "seen"}]})  # fmt: skip
    await WorkflowStore(redis).save(definition, create=True, now=datetime.now(UTC))
    event = _event(blueprint)
    topic = TopicRegistry.from_settings(settings).entity_events.name
    # A group of its own reads the topic from its start: ours is last for its key.
    await producer.send_and_wait(topic, event.key(), event.model_dump_json().encode())

    handled: list[Sequence[Any]] = []
    with JqTemplates(TemplateLimits.from_settings(settings)) as templates:
        matcher = _CutOnce(settings, redis, producer, templates)
        matcher.cut_at = event.id
        await matcher.start()
        try:
            await _inbox_has(settings, derived_run_id("event", event.id, workflow, "trigger"))
            handled.append(matcher.counts.handled)
        finally:
            await matcher.stop()
    assert matcher.cuts == 1  # the batch with our event failed on Redis, and was read again
    assert event.id in handled[0]
