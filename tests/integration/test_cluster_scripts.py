"""The entity store's, the scheduler's and the format marker's scripts on a real Redis
Cluster of three masters (``redis.asyncio.RedisCluster``): no CROSSSLOT refusal, and the
same results as on one Redis (each scenario runs on both). Also: what an older
release left in the global entity outbox is still published, and its node-run markers
still make a redelivered write a no-op."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from switchyard.engine.schedule_ticks import DueTick
from switchyard.engine.scheduler import Firing, Schedule, SchedulerService
from switchyard.engine.store import keys
from switchyard.engine.store.entities import EntityStore, WriteBy
from switchyard.engine.store.entity_outbox import EntityEventPublisher
from switchyard.engine.store.upgrade import (
    CODE_FORMAT,
    StoreFormat,
    StoreFormatRefused,
    claim_store_format,
)
from switchyard.schemas import encode, format_timestamp
from switchyard.schemas.entities import EntityDiff, EntityEvent, EntityEventContext, EntityOrigin
from switchyard.schemas.entity_rules import BlueprintInput, EntityInput
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.helpers import private_redis_db, until
from tests.helpers_cluster import RedisServer, redis_cluster
from tests.integration.engine_support import read_all

# The all-runs index as releases of key layout 1 wrote it (one global key): what an
# older release's store without a marker holds (keys.runs_all names layout 2's).
_LAYOUT_1_RUNS_ALL = f"{keys.PREFIX}runs:all"


@pytest.fixture
def settings(settings: Settings, session_tag: str) -> Settings:
    """A database of this session's own: the relay walks every blueprint of it."""
    return private_redis_db(settings, session_tag)


@pytest.fixture(scope="module")
def cluster_nodes() -> Iterator[list[RedisServer]]:
    with redis_cluster(3) as nodes:
        yield nodes


@pytest.fixture(params=["single", "cluster"])
async def store_client(
    request: pytest.FixtureRequest, redis: aioredis.Redis, cluster_nodes: list[RedisServer]
) -> AsyncIterator[aioredis.Redis]:
    """The shared Redis, or a client of the private cluster (typed as the store's)."""
    if request.param == "single":
        yield redis
        return
    cluster = RedisCluster(host="127.0.0.1", port=cluster_nodes[0].port)
    await cluster.initialize()
    try:
        yield cast(aioredis.Redis, cluster)
    finally:
        await cluster.aclose()


class _CutOff(EntityEventPublisher):
    """A writer that dies between its Redis write and its publish."""

    async def publish(self, event: EntityEvent) -> bool:
        return False


def _publisher(topics: Settings, client: aioredis.Redis, producer: EventProducer) -> Any:
    return EntityEventPublisher(
        client, producer, TopicRegistry.from_settings(topics).entity_events.name
    )


async def _entity_events(settings: Settings, key: str) -> list[EntityEvent]:
    records = await read_all(settings, TopicRegistry.from_settings(settings).entity_events.name)
    return [EntityEvent.model_validate(orjson.loads(r.value)) for r in records
            if r.key == key.encode()]  # fmt: skip


async def _new_blueprint(store: EntityStore) -> str:
    identifier = f"bp-{uuid.uuid4().hex[:8]}"
    body = BlueprintInput.model_validate(
        {"identifier": identifier, "schema": {"properties": {"n": {"type": "number"}}}}
    )
    await store.create_blueprint(body, "tests", datetime.now(UTC))
    return identifier


def _who(origin: EntityOrigin | None = None) -> WriteBy:
    return WriteBy(by="tests", event_id=f"evt_{uuid.uuid4().hex}", now=datetime.now(UTC),
                   origin=origin)  # fmt: skip


def _origin() -> EntityOrigin:
    return EntityOrigin(workflow_identifier="wf", workflow_run_identifier="wfr_x",
                        node_run_identifier=f"r_{uuid.uuid4().hex}", depth=0)  # fmt: skip


async def test_entity_writes_marker_and_relay_on_one_redis_and_on_a_cluster(
    topics: Settings, store_client: aioredis.Redis, producer: EventProducer
) -> None:
    publisher = _publisher(topics, store_client, producer)
    store = EntityStore(store_client, publisher)
    first, second = await _new_blueprint(store), await _new_blueprint(store)
    listed = {b.identifier for b in await store.blueprints()}
    assert {first, second} <= listed  # blueprints of two slots read together

    created = await store.upsert(first, EntityInput(properties={"n": 1}), "e", _who(),
                                 merge=True)  # fmt: skip
    assert created.created
    assert created.event is not None
    # A node run's write, then its redelivery: the marker hands back the first result.
    origin = _origin()
    node_write = await store.upsert(first, EntityInput(properties={"n": 2}), "e",
                                    _who(origin), merge=True)  # fmt: skip
    again = await store.upsert(first, EntityInput(properties={"n": 3}), "e", _who(origin),
                               merge=True)  # fmt: skip
    assert node_write.event is not None
    assert not node_write.replayed
    assert again.replayed
    assert again.entity == node_write.entity
    assert again.event is None
    stored = await store.get(first, "e")
    assert stored is not None
    assert stored.properties == {"n": 2}
    assert await store_client.get(keys.entity_node_run_of(first, origin.node_run_identifier))

    # A writer cut off before its publish: the relay publishes it from its outbox.
    cut = EntityStore(store_client, _CutOff(store_client, producer, publisher.topic))
    who = _who()
    left = await cut.upsert(second, EntityInput(properties={"n": 9}), "f", who, merge=False)
    assert await store_client.hexists(keys.entity_outbox(second), who.event_id)
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert await publisher.publish_left_over(later, min_age_s=5) >= 1
    assert not await store_client.hexists(keys.entity_outbox(second), who.event_id)
    assert await store_client.zscore(keys.entity_outbox_at(second), who.event_id) is None
    found = await until(lambda: _entity_events(topics, f"{second}/f"), bool)
    assert found == [left.event]

    deleted = await store.delete(first, "e", _who())
    assert deleted.event is not None
    assert deleted.event.action == "DELETE"
    assert await store.get(first, "e") is None
    assert await store.count(first) == 0
    events = await until(lambda: _entity_events(topics, f"{first}/e"),
                         lambda got: len(got) == 3)  # fmt: skip
    assert [e.action for e in events] == ["CREATE", "UPDATE", "DELETE"]


async def test_an_old_store_without_marker_is_format_one_on_a_cluster(
    cluster_nodes: list[RedisServer],
) -> None:
    """The private cluster holds nothing else, so the marker can be removed: then the
    data probe (keys in other slots than the marker's) decides, as on one Redis
    (``test_upgrade_in_place`` checks the same answers there). The code is layout 2,
    so an older release's store is found format 1, layout 1, and refused until
    upgraded."""
    cluster = RedisCluster(host="127.0.0.1", port=cluster_nodes[0].port)
    client = cast(aioredis.Redis, cluster)
    try:
        await client.delete(keys.META, keys.WORKFLOWS, _LAYOUT_1_RUNS_ALL)
        assert await claim_store_format(client) == CODE_FORMAT  # a new store
        assert await claim_store_format(client) == CODE_FORMAT  # now recorded
        assert await client.hget(keys.META, "key_layout") == str(CODE_FORMAT.key_layout).encode()
        await client.delete(keys.META)
        await client.zadd(_LAYOUT_1_RUNS_ALL, {"wfr_old": 1})  # an older release's data
        with pytest.raises(StoreFormatRefused) as refused:
            await claim_store_format(client)
        assert refused.value.stored == StoreFormat(1, 1)
        assert "switchyard state upgrade" in str(refused.value)
        assert not await client.exists(keys.META)  # refused: nothing recorded
    finally:
        await client.delete(keys.META, _LAYOUT_1_RUNS_ALL)
        await cluster.aclose()


async def test_scheduler_records_ticks_on_one_redis_and_on_a_cluster(
    topics: Settings, store_client: aioredis.Redis, producer: EventProducer
) -> None:
    scheduler = SchedulerService(topics, store_client, producer)
    workflow = f"wf-{uuid.uuid4().hex[:8]}"
    tick = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    schedules = [Schedule(workflow, 1, node, "0 * * * *", tick) for node in ("a", "b", "c")]
    await scheduler._fire([Firing(s, "", DueTick(tick)) for s in schedules], tick)
    assert scheduler.counts.recorded == 3
    for schedule in schedules:
        tick_recorded = await store_client.hget(keys.schedule(workflow, schedule.node), "tick")
        assert tick_recorded == format_timestamp(tick).encode()
    # A stale read (another scheduler moved the record): nothing more is recorded.
    await scheduler._fire([Firing(schedules[0], "", DueTick(tick))], tick)
    assert scheduler.counts.recorded == 3


async def test_an_older_releases_global_outbox_and_markers_are_honoured(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer
) -> None:
    publisher = _publisher(topics, redis, producer)
    store = EntityStore(redis, publisher)
    blueprint = await _new_blueprint(store)
    now = datetime.now(UTC)
    event = EntityEvent(
        id=f"evt_{uuid.uuid4().hex}", action="CREATE",
        diff=EntityDiff(before=None, after={"identifier": "old"}),
        context=EntityEventContext(blueprint_identifier=blueprint, entity_identifier="old"),
        by="an older release", at=now,
    )  # fmt: skip
    # As a release before issue 17 left it: written, never published.
    await redis.hset(keys.LEGACY_ENTITY_OUTBOX, event.id, encode(event))
    await redis.zadd(keys.LEGACY_ENTITY_OUTBOX_AT, {event.id: int(now.timestamp() * 1000)})
    assert await publisher.publish_left_over(now + timedelta(seconds=30), min_age_s=5) >= 1
    assert await until(lambda: _entity_events(topics, f"{blueprint}/old"), bool) == [event]
    assert not await redis.hexists(keys.LEGACY_ENTITY_OUTBOX, event.id)
    assert await redis.zscore(keys.LEGACY_ENTITY_OUTBOX_AT, event.id) is None

    # A node run whose write an older release made (its marker under the old name):
    # the redelivered request gets that result back and writes nothing.
    origin = _origin()
    marker = {"eventId": "evt_before", "entity": None, "created": True}
    await redis.set(keys.entity_node_run(origin.node_run_identifier), orjson.dumps(marker), ex=60)
    written = await store.upsert(blueprint, EntityInput(properties={"n": 1}), "again",
                                 _who(origin), merge=True)  # fmt: skip
    assert written.replayed
    assert written.event is None
    assert await store.get(blueprint, "again") is None
