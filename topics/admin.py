"""Creating the registry's topics, idempotently (`switchyard topics ensure`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options
from switchyard.topics.registry import Topic, TopicRegistry

# Kafka error code for "topic already exists": a concurrent `ensure` created it first.
_TOPIC_ALREADY_EXISTS = 36


class TopicMismatch(Exception):
    """An existing topic has a partition count other than the registry's."""


@dataclass(frozen=True)
class EnsureReport:
    created: tuple[str, ...]
    existing: tuple[str, ...]


async def ensure_topics(settings: Settings, registry: TopicRegistry | None = None) -> EnsureReport:
    """Create every missing topic; check the partition counts of the existing ones.

    A mismatch is an error, never "fixed": adding partitions to the inbox would
    remap run ids to partitions under running engines.
    """
    registry = registry or TopicRegistry.from_settings(settings)
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        existing = await _partition_counts_retried(admin, registry.all())
        missing = [t for t in registry.all() if t.name not in existing]
        for topic in registry.all():
            have = existing.get(topic.name)
            if have is not None and have != topic.partitions:
                raise TopicMismatch(
                    f"topic {topic.name} has {have} partitions, the registry says "
                    f"{topic.partitions}; set SWITCHYARD_INBOX_PARTITIONS={have} or use a new "
                    "SWITCHYARD_TOPIC_PREFIX"
                )
        if missing:
            await _create(admin, missing, settings.topic_replication_factor)
            await _wait_for_leaders(admin, missing)
        return EnsureReport(
            created=tuple(t.name for t in missing),
            existing=tuple(t.name for t in registry.all() if t.name in existing),
        )
    finally:
        await admin.close()


async def _partition_counts_retried(
    admin: AIOKafkaAdminClient, topics: tuple[Topic, ...], within: float = 30.0
) -> dict[str, int]:
    """The partition counts, retried while a retriable error says a broker is still
    starting: a cluster that has just restarted lists brokers before they listen."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await _partition_counts(admin, topics)
        except KafkaError as error:
            if not error.retriable or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _partition_counts(
    admin: AIOKafkaAdminClient, topics: tuple[Topic, ...]
) -> dict[str, int]:
    described = await admin.describe_topics([t.name for t in topics])
    # Error code 0 means the topic exists; 3 (unknown topic) means it does not.
    return {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, topics: list[Topic], within: float = 30.0
) -> None:
    """Return once every partition has a leader: before that, produce and list-offsets
    calls fail with NotLeaderForPartition, which clients retry but tests trip over."""
    deadline = asyncio.get_running_loop().time() + within
    names = [t.name for t in topics]
    while True:
        described = await admin.describe_topics(names)
        ready = all(
            d["error_code"] == 0
            and d["partitions"]
            and all(p["error_code"] == 0 and p["leader"] >= 0 for p in d["partitions"])
            for d in described
        )
        if ready:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"topics {names} have partitions without a leader after {within} s")
        await asyncio.sleep(0.05)


def topic_configs(topic: Topic, replication: int) -> dict[str, str]:
    """The topic's own configs, plus ``min.insync.replicas=2`` once it has three copies or
    more: with the producer's ``acks=all`` a write is then on two brokers before it is
    acknowledged, so losing any one broker loses nothing acknowledged."""
    configs = topic.configs()
    if replication >= 3:
        configs["min.insync.replicas"] = "2"
    return configs


async def _create(admin: AIOKafkaAdminClient, topics: list[Topic], replication: int) -> None:
    response = await admin.create_topics(
        [
            NewTopic(t.name, t.partitions, replication, topic_configs=topic_configs(t, replication))
            for t in topics
        ]
    )
    for name, code, *rest in response.topic_errors:
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            message = rest[0] if rest else ""
            raise RuntimeError(f"creating topic {name} failed: error {code} {message}")
