"""Effectively once: redelivered inbox events change nothing; a crash between the
Redis step and the Kafka publish is repaired from the outbox with the same ids."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from switchyard.engine import processor as processor_module
from switchyard.engine.processor import InboxRecord, Outcome, handle_batch
from switchyard.engine.store import keys
from switchyard.engine.store import plan as plan_module
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas import NodeRunUpdated, RunTriggered, encode, node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.partitioning import partition_of
from switchyard.topics.producer import EventProducer, Outgoing
from switchyard.topics.registry import TopicRegistry
from tests.integration.engine_support import (
    Driver,
    define_two_kafka_steps,
    make_processor,
    new_run_id,
    read_all,
)

pytestmark = pytest.mark.integration


class BrokenProducer(EventProducer):
    """A producer whose broker "goes away" after the Redis step: nothing is sent."""

    async def send(
        self,
        topic: str,
        key: str | bytes,
        value: bytes,
        *,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[object]:
        raise ConnectionError("broker unreachable (simulated crash before publish)")

    async def send_many(self, messages: Iterable[Outgoing]) -> list[asyncio.Future[object]]:
        raise ConnectionError("broker unreachable (simulated crash before publish)")


@pytest.fixture
async def workflow(driver: Driver) -> str:
    return await define_two_kafka_steps(driver, "once")


@pytest.fixture
async def broken(topics: Settings) -> AsyncIterator[EventProducer]:
    async with BrokenProducer(topics) as p:
        yield p


def _record(settings: Settings, offset: int, run_id: str, value: bytes) -> InboxRecord:
    """A record where a run's events belong: its key, its murmur2 partition."""
    inbox = TopicRegistry.from_settings(settings).inbox.name
    home = partition_of(run_id, settings.inbox_partitions)
    return InboxRecord(inbox, home, offset, run_id.encode(), value)


def _replayed(inbox: str) -> str:
    """A topic name for records at made-up offsets that name no run of their partition:
    those are guarded per topic and partition, and must not meet this session's real
    ones (a guard past a real offset would take that record for a redelivery)."""
    return f"{inbox}.replayed-{uuid.uuid4().hex[:6]}"


def _trigger(run_id: str, workflow: str) -> bytes:
    return encode(RunTriggered.model_validate({
        "runId": run_id, "workflowIdentifier": workflow, "createdBy": "tests",
        "triggeredAt": datetime.now(UTC),
    }))  # fmt: skip


def _complete(run_id: str, node: str) -> bytes:
    return encode(NodeRunUpdated.model_validate({
        "runId": run_id, "nodeRunId": node_run_id(run_id, node), "status": "COMPLETED",
        "result": "SUCCESS", "output": {"done": node}, "sentAt": datetime.now(UTC),
    }))  # fmt: skip


async def _requests_for(settings: Settings, run_id: str) -> list[dict[str, Any]]:
    topic = TopicRegistry.from_settings(settings).node_run_requests.name
    return [
        orjson.loads(r.value) for r in await read_all(settings, topic) if r.key == run_id.encode()
    ]


def _tag(settings: Settings, run_id: str) -> str:
    """The hash tag of the run's keys: its inbox partition's (where these tests apply)."""
    return keys.tag_of(run_id, TopicRegistry.from_settings(settings).inbox.partitions)


def _store(settings: Settings, redis: aioredis.Redis) -> RunStore:
    return RunStore(redis, TopicRegistry.from_settings(settings).inbox.partitions)


async def _snapshot(
    redis: aioredis.Redis, settings: Settings, run_id: str
) -> dict[bytes | str, bytes | str]:
    found: dict[bytes | str, bytes | str] = await redis.hgetall(
        keys.run(run_id, _tag(settings, run_id))
    )
    return found


async def test_the_same_event_twice_changes_nothing_the_second_time(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer, templates: Any, workflow: str
) -> None:
    run_id = new_run_id()
    records = [
        _record(topics, 100, run_id, _trigger(run_id, workflow)),
        _record(topics, 101, run_id, _complete(run_id, "work")),
    ]
    await make_processor(topics, redis, producer, templates).handle(records)
    before = await _snapshot(redis, topics, run_id)
    logs_before = await redis.lrange(keys.logs(run_id, _tag(topics, run_id)), 0, -1)

    # A restarted processor (nothing in memory) gets the uncommitted batch again.
    await make_processor(topics, redis, producer, templates).handle(records)
    await make_processor(topics, redis, producer, templates).handle(records[1:])

    assert await _snapshot(redis, topics, run_id) == before
    assert await redis.lrange(keys.logs(run_id, _tag(topics, run_id)), 0, -1) == logs_before
    requests = await _requests_for(topics, run_id)
    assert [r["context"]["nodeRunId"] for r in requests] == [
        node_run_id(run_id, "work"),
        node_run_id(run_id, "after"),
    ]


async def test_a_crash_between_persist_and_publish_is_repaired_from_the_outbox(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer, broken: EventProducer,
    templates: Any, workflow: str,
) -> None:  # fmt: skip
    run_id = new_run_id()
    trigger = _record(topics, 7, run_id, _trigger(run_id, workflow))
    with pytest.raises(ConnectionError):
        await make_processor(topics, redis, broken, templates).handle([trigger])
    persisted = await _store(topics, redis).get(run_id)
    assert persisted is not None
    assert persisted.waiting_on == [node_run_id(run_id, "work")]
    assert await _requests_for(topics, run_id) == []
    assert run_id.encode() in await redis.smembers(keys.outbox_pending(_tag(topics, run_id)))

    restarted = make_processor(topics, redis, producer, templates)
    assert await restarted.recover() >= 1
    await restarted.handle([trigger])  # the uncommitted event comes back: a no-op

    requests = await _requests_for(topics, run_id)
    assert [r["context"]["nodeRunId"] for r in requests] == [node_run_id(run_id, "work")]
    assert run_id.encode() not in await redis.smembers(keys.outbox_pending(_tag(topics, run_id)))
    assert await redis.hlen(keys.outbox(run_id, _tag(topics, run_id))) == 0


async def test_an_event_keyed_by_something_else_is_rekeyed_not_applied(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer, templates: Any, workflow: str
) -> None:
    run_id = new_run_id()
    inbox = TopicRegistry.from_settings(topics).inbox.name
    home = partition_of(run_id, topics.inbox_partitions)
    # Its offset is made up: a topic name of its own keeps its guard from other tests'.
    stray = InboxRecord(_replayed(inbox), home, 55, b"not-the-run-id", _trigger(run_id, workflow))
    assert await make_processor(topics, redis, producer, templates).handle([stray]) == [
        Outcome.MOVED
    ]
    assert await _store(topics, redis).get(run_id) is None
    republished = [r for r in await read_all(topics, inbox) if r.key == run_id.encode()]
    assert [orjson.loads(r.value)["runId"] for r in republished] == [run_id]
    assert [r.partition for r in republished] == [home]


async def test_an_unreadable_record_is_dead_lettered_once_however_often_it_comes_back(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer, broken: EventProducer,
    templates: Any,
) -> None:  # fmt: skip
    """Its letter (stamped with the time it was written) is published once: after a
    crash before the publish, and after one between the publish and the commit."""
    registry = TopicRegistry.from_settings(topics)
    topic, key = _replayed(registry.inbox.name), f"poison-{uuid.uuid4().hex[:8]}".encode()
    first, second = (InboxRecord(topic, 3, offset, key, b"\xffnot json") for offset in (40, 41))
    try:
        with pytest.raises(ConnectionError):
            await make_processor(topics, redis, broken, templates).handle([first])
        restarted = make_processor(topics, redis, producer, templates)
        assert await restarted.recover() >= 1
        assert await restarted.handle([first]) == [Outcome.REDELIVERED]
        assert await restarted.handle([second]) == [Outcome.DEAD_LETTERED]
        # Published, not committed: the record comes back to the next engine.
        again = make_processor(topics, redis, producer, templates)
        assert await again.handle([first, second]) == [Outcome.REDELIVERED] * 2

        letters = [
            orjson.loads(r.value)
            for r in await read_all(topics, registry.dead_letter.name)
            if r.key == key
        ]
        assert [(x["topic"], x["offset"], x["code"]) for x in letters] == [
            (topic, 40, "undecodable"), (topic, 41, "undecodable"),
        ]  # fmt: skip
    finally:
        await redis.delete(keys.strays(topic, partition_tag(3, topics.inbox_partitions)))


async def test_a_report_delivered_twice_is_ignored_without_a_dead_letter(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer, templates: Any, workflow: str
) -> None:
    run_id = new_run_id()
    processor = make_processor(topics, redis, producer, templates)
    await processor.handle([
        _record(topics, 10, run_id, _trigger(run_id, workflow)),
        _record(topics, 11, run_id, _complete(run_id, "work")),
    ])  # fmt: skip
    before = await _snapshot(redis, topics, run_id)
    # A worker restarted before committing reports the same outcome again (new offset).
    await processor.handle([_record(topics, 12, run_id, _complete(run_id, "work"))])
    after = await _snapshot(redis, topics, run_id)
    assert after[b"state"] == before[b"state"]
    assert after[b"offset"] == b"12"
    dead = TopicRegistry.from_settings(topics).dead_letter.name
    assert [r for r in await read_all(topics, dead) if r.key == run_id.encode()] == []


async def test_a_record_that_breaks_the_engine_is_dead_lettered_and_the_rest_applied(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer, templates: Any,
    workflow: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    good, bad = new_run_id(), new_run_id()
    processor = make_processor(topics, redis, producer, templates)
    real = plan_module.plan_decision

    def plan_or_fail(old: Any, decision: Any, **kwargs: Any) -> Any:
        if decision.state is not None and decision.state.run_id == bad:
            raise ValueError("a bug this event triggers")
        return real(old, decision, **kwargs)

    monkeypatch.setattr(processor_module, "plan_decision", plan_or_fail)
    await handle_batch(processor, [
        _record(topics, 20, bad, _trigger(bad, workflow)),
        _record(topics, 21, good, _trigger(good, workflow)),
    ])  # fmt: skip
    assert await _store(topics, redis).get(bad) is None
    applied = await _store(topics, redis).get(good)
    assert applied is not None
    assert applied.waiting_on == [node_run_id(good, "work")]
    dead = TopicRegistry.from_settings(topics).dead_letter.name
    [letter] = [
        orjson.loads(r.value) for r in await read_all(topics, dead) if r.key == bad.encode()
    ]
    assert letter["code"] == "engine_error"
    assert "a bug this event triggers" in letter["reason"]


async def test_redis_away_is_retried_not_dead_lettered(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer, templates: Any,
    workflow: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    run_id = new_run_id()
    processor = make_processor(topics, redis, producer, templates)
    real = processor.store.apply
    failures = [2]

    async def flaky(plans: Any) -> Any:
        if failures[0]:
            failures[0] -= 1
            raise RedisConnectionError("Redis restarting (simulated)")
        return await real(plans)

    monkeypatch.setattr(processor.store, "apply", flaky)
    await handle_batch(processor, [_record(topics, 30, run_id, _trigger(run_id, workflow))])
    assert failures == [0]
    assert await _store(topics, redis).get(run_id) is not None
    dead = TopicRegistry.from_settings(topics).dead_letter.name
    assert [r for r in await read_all(topics, dead) if r.key == run_id.encode()] == []


async def test_a_batch_prepared_while_the_one_before_is_unpublished_does_not_send_its_messages(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer, templates: Any, workflow: str
) -> None:  # fmt: skip
    """The Kafka driver decides batch N+1 while batch N is being published: N's outbox
    step, still in Redis, is N's to publish, not a crash's leftover for N+1 to send."""
    run_id = new_run_id()
    processor = make_processor(topics, redis, producer, templates)
    first = await processor.prepare([_record(topics, 300, run_id, _trigger(run_id, workflow))])
    second = await processor.prepare([_record(topics, 301, run_id, _complete(run_id, "work"))])
    assert first.messages
    assert all(m.key == run_id for m in first.messages)
    assert not {m.value for m in first.messages} & {m.value for m in second.messages}

    assert await processor.finish(first) == [Outcome.APPLIED]
    assert await processor.finish(second) == [Outcome.APPLIED]
    requests = await _requests_for(topics, run_id)
    assert [r["context"]["nodeRunId"] for r in requests] == [
        node_run_id(run_id, "work"),
        node_run_id(run_id, "after"),
    ]
    assert await redis.hlen(keys.outbox(run_id, _tag(topics, run_id))) == 0
