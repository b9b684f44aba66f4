"""Start-up recovery of outboxes a crash left behind, when some name a topic that is
gone: those steps stay in Redis and the rest are published, without the Kafka
client's 40 s wait per unknown topic holding (and then failing) the engine's start."""

from __future__ import annotations

import uuid

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import TopicPartition

from switchyard.engine.inbox_kafka import KafkaInbox, _FinishBeforeRevoke
from switchyard.engine.store import keys
from switchyard.engine.store.plan import OutboxMessage
from switchyard.schemas.settings import Settings
from switchyard.topics.partitioning import partition_of
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.helpers import private_redis_db
from tests.integration.engine_support import make_processor, read_all

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings, session_tag: str) -> Settings:
    return private_redis_db(settings, session_tag)


async def _leave_outbox(
    redis: aioredis.Redis, run_id: str, tag: str, message: OutboxMessage
) -> None:
    await redis.hset(keys.outbox(run_id, tag), "step-1", orjson.dumps([message.to_json()]))
    await redis.sadd(keys.outbox_pending(tag), run_id)


async def test_recovery_publishes_what_it_can_and_leaves_steps_for_missing_topics(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer
) -> None:
    run_events = TopicRegistry.from_settings(topics).run_events.name
    kept, stale = (f"wfr_{uuid.uuid4().hex[:16]}" for _ in range(2))
    kept_tag, stale_tag = (keys.tag_of(r, topics.inbox_partitions) for r in (kept, stale))
    marker = uuid.uuid4().hex.encode()
    kept_message = OutboxMessage(run_events, kept, b'{"m": "' + marker + b'"}')
    await _leave_outbox(redis, kept, kept_tag, kept_message)
    gone = f"gone-{uuid.uuid4().hex[:8]}.run-events"
    await _leave_outbox(redis, stale, stale_tag, OutboxMessage(gone, stale, b"{}"))
    processor = make_processor(topics, redis, producer, templates=None)

    recovered = await processor.recover()

    assert recovered >= 1
    assert await redis.hgetall(keys.outbox(kept, kept_tag)) == {}
    assert await redis.hkeys(keys.outbox(stale, stale_tag)) == [b"step-1"]
    assert await redis.sismember(keys.outbox_pending(stale_tag), stale)
    published = [r for r in await read_all(topics, run_events) if marker in (r.value or b"")]
    assert [r.key for r in published] == [kept.encode()]
    await redis.delete(keys.outbox(stale, stale_tag))
    await redis.srem(keys.outbox_pending(stale_tag), stale)


def _run_in(partition: int, partitions: int) -> str:
    while True:
        run_id = f"wfr_{uuid.uuid4().hex[:16]}"
        if partition_of(run_id, partitions) == partition:
            return run_id


async def test_partitions_taken_over_publish_what_their_dead_owner_left_once(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer
) -> None:
    """An engine assigned partitions (a rebalance after another one died) publishes the
    leftovers of those partitions' runs, not of others, nor its own in flight."""
    partitions = topics.inbox_partitions
    run_events = TopicRegistry.from_settings(topics).run_events.name
    left, other, own = _run_in(3, partitions), _run_in(4, partitions), _run_in(3, partitions)
    marker = uuid.uuid4().hex.encode()
    for run_id in (left, other, own):
        message = OutboxMessage(run_events, run_id, b'{"m": "' + marker + b'"}')
        await _leave_outbox(redis, run_id, keys.tag_of(run_id, partitions), message)
    processor = make_processor(topics, redis, producer, templates=None)
    inbox = KafkaInbox(topics, processor)
    own_tag = keys.tag_of(own, partitions)
    processor._publishing.add((own_tag, own, "step-1"))  # this engine's batch in flight

    try:
        await _FinishBeforeRevoke(inbox).on_partitions_assigned(
            [TopicPartition(TopicRegistry.from_settings(topics).inbox.name, 3)]
        )
    finally:
        await inbox.consumer.stop()  # never started: only the listener is exercised

    published = [r.key for r in await read_all(topics, run_events) if marker in (r.value or b"")]
    assert published == [left.encode()]
    assert await redis.hgetall(keys.outbox(left, keys.tag_of(left, partitions))) == {}
    for run_id in (other, own):  # left for their owner, or for this engine's own publish
        tag = keys.tag_of(run_id, partitions)
        assert await redis.hkeys(keys.outbox(run_id, tag)) == [b"step-1"]
        await redis.delete(keys.outbox(run_id, tag))
        await redis.srem(keys.outbox_pending(tag), run_id)
