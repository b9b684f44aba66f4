"""The real broker and Redis the rest of the suite stands on."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from switchyard.schemas.settings import Settings
from switchyard.topics.admin import TopicMismatch, ensure_topics
from switchyard.topics.registry import TopicRegistry
from tests.conftest import Services

pytestmark = pytest.mark.integration


async def _partitions(settings: Settings, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}


async def test_ensure_creates_registry_topics_with_their_partition_counts(
    settings: Settings,
) -> None:
    registry = TopicRegistry.from_settings(settings)
    first = await ensure_topics(settings)
    second = await ensure_topics(settings)

    names = [t.name for t in registry.all()]
    assert await _partitions(settings, names) == {t.name: t.partitions for t in registry.all()}
    assert registry.inbox.partitions == 12
    assert set(first.created) | set(first.existing) == set(names)
    assert second.created == ()
    assert set(second.existing) == set(names)


async def test_ensure_refuses_to_change_an_existing_partition_count(settings: Settings) -> None:
    await ensure_topics(settings)
    other = settings.model_copy(update={"inbox_partitions": 3})
    with pytest.raises(TopicMismatch, match=r"inbox has 12 partitions.*registry says 3"):
        await ensure_topics(other)


async def test_message_on_a_registry_topic_is_consumed_by_a_group_with_committed_offset(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    topic = TopicRegistry.from_settings(settings).inbox.name
    key = f"wfr_{uuid.uuid4().hex[:16]}".encode()
    value = b'{"type": "probe"}'
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()

    group = f"probe-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen = None
        async for message in consumer:
            if message.key == key:
                seen = message
                break
        assert seen is not None
        assert (seen.value, seen.partition, seen.offset) == (value, sent.partition, sent.offset)
        tp = TopicPartition(topic, seen.partition)
        await consumer.commit({tp: seen.offset + 1})
        assert await consumer.committed(tp) == seen.offset + 1
    finally:
        await consumer.stop()


async def test_redis_round_trip(settings: Settings, services: Services) -> None:
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    key = f"test:{uuid.uuid4().hex}"
    try:
        await client.set(key, "value", ex=60)
        assert await client.get(key) == "value"
        if services.source == "launcher":
            # The launcher's Redis must survive kill -9 with at most a second lost.
            config = await client.config_get("append*")
            assert config["appendonly"] == "yes"
            assert config["appendfsync"] == "everysec"
    finally:
        await client.delete(key)
        await client.aclose()
