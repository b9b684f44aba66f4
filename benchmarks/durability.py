"""What a figure was measured under: the running stack's fsync settings, read back
from Redis and the broker (not from what was asked for), and the producers' acks.

A figure means little without them: ``appendfsync always`` and a broker flush per
message cost fsyncs that ``everysec`` and the page cache don't.
"""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from benchmarks.stack import BenchStack

# Kafka's default for both: never by count or time, the OS writes the page cache back.
_NEVER = "9223372036854775807"


async def broker_flush(bootstrap: str) -> dict[str, str]:
    """The broker's ``log.flush.interval.messages`` and ``.ms`` (node 1, the only one)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")])
    finally:
        await admin.close()
    wanted = {"log.flush.interval.messages", "log.flush.interval.ms"}
    found: dict[str, str] = {}
    for response in described:
        for resource in response.resources:
            for entry in resource[4]:  # (name, value, read_only, default, sensitive)
                if entry[0] in wanted:
                    found[entry[0]] = str(entry[1])
    return found


def _flush_text(flush: dict[str, str]) -> str:
    messages = flush.get("log.flush.interval.messages")
    if messages in (None, _NEVER) and flush.get("log.flush.interval.ms") in (None, "None"):
        return "default (page cache, no fsync per write)"
    return ", ".join(f"{k.removeprefix('log.')}={v}" for k, v in sorted(flush.items()))


async def settings_of(stack: BenchStack) -> dict[str, Any]:
    """The profile's name and the settings in force on ``stack``."""
    client = stack.redis()
    try:
        config = await client.config_get("append*")
    finally:
        await client.aclose()
    found: dict[Any, Any] = dict(config)
    if found and all(isinstance(v, dict) for v in found.values()):
        found = next(iter(found.values()))  # a cluster's answer: per node, all alike
    flush = await broker_flush(stack.settings.kafka_bootstrap_servers)
    return {
        "profile": stack.settings.durability,
        "redis_appendonly": found.get("appendonly"),
        "redis_appendfsync": found.get("appendfsync"),
        "kafka_flush": _flush_text(flush),
        "kafka_flush_settings": flush,
        "kafka_replication": stack.settings.topic_replication_factor,
        "producer_acks": "all (idempotent)",
        "redis_cluster": stack.settings.redis_cluster,
        "redis_wait_replicas": stack.settings.redis_wait_replicas,
    }


def summary(settings: dict[str, Any]) -> str:
    """One line for the table."""
    return (
        f"{settings['profile']}: redis appendfsync {settings['redis_appendfsync']}, "
        f"kafka flush {settings['kafka_flush']}, acks {settings['producer_acks']}, "
        f"replication {settings['kafka_replication']}"
        + (
            f", Redis Cluster, WAIT {settings.get('redis_wait_replicas', 0)} replica(s) before "
            "each commit"
            if settings.get("redis_cluster")
            else ""
        )
    )
