"""The entity store on real Redis and Kafka: a change and its event are one write
(concurrent merges all land, each event's ``before`` is exactly the entity it
replaced, one event per change, the outbox empty afterwards), and the relay
publishes an event whose publish was cut off."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis.asyncio as aioredis

from switchyard.engine.store import keys
from switchyard.engine.store.entities import EntityStore, WriteBy
from switchyard.engine.store.entity_outbox import EntityEventPublisher, EntityOutboxRelay
from switchyard.schemas.entities import EntityEvent
from switchyard.schemas.entity_rules import BlueprintInput, EntityInput
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.helpers import private_redis_db, until
from tests.integration.engine_support import read_all

pytestmark = pytest.mark.integration

WRITERS = 20


@pytest.fixture
def settings(settings: Settings, session_tag: str) -> Settings:
    """A Redis database of this session's own: the relay takes every old outbox entry
    of its database, and must not take (or be raced by) another session's."""
    return private_redis_db(settings, session_tag)


def _publisher(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer
) -> EntityEventPublisher:
    return EntityEventPublisher(
        redis, producer, TopicRegistry.from_settings(topics).entity_events.name
    )


async def _blueprint(store: EntityStore) -> str:
    identifier = f"bp-{uuid.uuid4().hex[:8]}"
    properties = {f"p{n}": {"type": "number"} for n in range(WRITERS)}
    body = BlueprintInput.model_validate({"identifier": identifier,
                                          "schema": {"properties": properties}})  # fmt: skip
    await store.create_blueprint(body, "tests", datetime.now(UTC))
    return identifier


async def _events(settings: Settings, key: str) -> list[EntityEvent]:
    records = await read_all(settings, TopicRegistry.from_settings(settings).entity_events.name)
    return [EntityEvent.model_validate(orjson.loads(r.value)) for r in records
            if r.key == key.encode()]  # fmt: skip


def _who(n: int) -> WriteBy:
    return WriteBy(by=f"writer-{n}", event_id=f"evt_{uuid.uuid4().hex}", now=datetime.now(UTC))


async def test_concurrent_merges_all_land_each_with_one_exact_event(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer
) -> None:
    store = EntityStore(redis, _publisher(topics, redis, producer))
    blueprint = await _blueprint(store)

    async def write(n: int) -> None:
        change = EntityInput(properties={f"p{n}": n})
        await store.upsert(blueprint, change, "shared", _who(n), merge=True)

    # Twenty writers on separate connections read the same entity and race to write it.
    await asyncio.gather(*(write(n) for n in range(WRITERS)))

    stored = await store.get(blueprint, "shared")
    assert stored is not None
    assert stored.properties == {f"p{n}": n for n in range(WRITERS)}  # no merge lost
    events = await until(lambda: _events(topics, f"{blueprint}/shared"),
                         lambda found: len(found) >= WRITERS)  # fmt: skip
    assert len(events) == WRITERS  # one per change, none twice
    assert [e.action for e in events].count("CREATE") == 1
    # Each event's before is exactly one other event's after: the events form one
    # chain from the create to the stored entity (Kafka may show two writers' events
    # in another order than their commits; the chain is what is exact).
    afters = [orjson.dumps(e.diff.after) for e in events]
    befores = [orjson.dumps(e.diff.before) for e in events if e.diff.before is not None]
    final = orjson.dumps(stored.model_dump(mode="json"))
    assert sorted([*befores, final]) == sorted(afters)
    assert len(set(afters)) == WRITERS
    for event in events:
        # published, forgotten
        assert not await redis.hexists(keys.entity_outbox(blueprint), event.id)


class _CutOff(EntityEventPublisher):
    """A writer that dies between its Redis write and its publish."""

    async def publish(self, event: EntityEvent) -> bool:
        return False


async def test_the_relay_publishes_an_event_whose_publish_was_cut_off(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer
) -> None:
    publisher = _publisher(topics, redis, producer)
    crashing = EntityStore(redis, _CutOff(redis, producer, publisher.topic))
    blueprint = await _blueprint(crashing)
    who = _who(1)
    written = await crashing.upsert(blueprint, EntityInput(properties={"p1": 1}), "e", who,
                                    merge=True)  # fmt: skip
    assert written.event is not None
    assert await redis.hexists(keys.entity_outbox(blueprint), who.event_id)
    assert await _events(topics, f"{blueprint}/e") == []

    # Too young: its writer may still be publishing it.
    assert await publisher.publish_left_over(datetime.now(UTC), min_age_s=60) == 0
    later = datetime.now(UTC) + timedelta(seconds=10)
    assert await publisher.publish_left_over(later, min_age_s=5) >= 1

    events = await until(lambda: _events(topics, f"{blueprint}/e"), lambda found: bool(found))
    assert events == [written.event]
    assert not await redis.hexists(keys.entity_outbox(blueprint), who.event_id)
    assert await redis.zscore(keys.entity_outbox_at(blueprint), who.event_id) is None


async def test_the_relay_runs_in_the_background(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer
) -> None:
    publisher = _publisher(topics, redis, producer)
    crashing = EntityStore(redis, _CutOff(redis, producer, publisher.topic))
    blueprint = await _blueprint(crashing)
    await crashing.upsert(blueprint, EntityInput(properties={"p2": 2}), "e", _who(2), merge=True)
    relay = EntityOutboxRelay(publisher, lambda: datetime.now(UTC), interval_s=0.05, min_age_s=0)
    async with relay:
        with pytest.raises(RuntimeError, match="start"):
            await relay.start()
        events = await until(lambda: _events(topics, f"{blueprint}/e"), lambda found: bool(found))
    await relay.stop()  # idempotent
    assert [e.action for e in events] == ["CREATE"]
    assert relay.published >= 1
