"""The readiness checks a process's ``/readyz`` runs: ``redis`` (a PING answers),
``kafka`` (a broker answers the producer's metadata request), ``consumer`` (its group
member holds partitions of its topic, or stands by in a group with more members
than partitions) and ``loop`` (a named loop task is alive). Shared by Switchyard's
processes and the SDK's workers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from switchyard.topics.producer import EventProducer
from switchyard.topics.telemetry.ops import Check, CheckFn

# aiokafka's generation before a member has joined its group (OffsetCommitRequest's).
_NOT_JOINED = -1


def redis_check(redis: aioredis.Redis) -> CheckFn:
    async def check() -> Check:
        try:
            await redis.ping()
        except RedisError as error:  # its repr says only "network:ConnectionError"
            return Check.failed(f"PING failed: {error}")
        return Check.passed("PING answered")

    return check


def kafka_check(producer: EventProducer) -> CheckFn:
    async def check() -> Check:
        try:
            brokers = await producer.reachable()
        except KafkaError as error:
            return Check.failed(f"no broker answered a metadata request: {error}")
        return Check.passed(f"metadata from {brokers} broker(s)")

    return check


def _member_state(consumer: AIOKafkaConsumer, topic: str) -> tuple[list[int], bool]:
    """The partitions of ``topic`` the member holds, and whether it has joined its group."""
    held = sorted(tp.partition for tp in consumer.assignment() if tp.topic == topic)
    # aiokafka keeps the generation on its (untyped) coordinator; -1 until joined.
    coordinator: Any = getattr(consumer, "_coordinator", None)
    generation = getattr(coordinator, "generation", _NOT_JOINED)
    return held, isinstance(generation, int) and generation != _NOT_JOINED


def member_finding(consumer: AIOKafkaConsumer, topic: str) -> Check:
    held, joined = _member_state(consumer, topic)
    if held:
        partitions = "partition" if len(held) == 1 else "partitions"
        return Check.passed(f"assigned {len(held)} {partitions} of {topic}: {held}")
    if joined:
        # More members than partitions: this one stands by and takes over partitions
        # when another leaves; it is a healthy member of the group.
        return Check.passed(
            f"joined the group, assigned 0 partitions of {topic}: the group has more "
            "members than the topic has partitions"
        )
    return Check.failed(f"assigned 0 partitions of {topic}: not yet joined the group")


def consumer_check(members: Sequence[tuple[AIOKafkaConsumer, str]]) -> CheckFn:
    """Passes when every (consumer, topic) member passes; the detail names each."""

    async def check() -> Check:
        found = [member_finding(consumer, topic) for consumer, topic in members]
        detail = "; ".join(f.detail for f in found)
        return Check(all(f.ok for f in found), detail)

    return check


def task_check(name: str) -> CheckFn:
    """Passes while the asyncio task called ``name`` (the service's loop) runs."""

    async def check() -> Check:
        alive = [t for t in asyncio.all_tasks() if t.get_name() == name and not t.done()]
        if alive:
            return Check.passed(f"{name} running")
        return Check.failed(f"{name} is not running (see the process's log)")

    return check
