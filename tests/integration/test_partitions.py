"""Nothing accepted is dropped in silence: every path by which the engine does not
apply an inbox record, each with its evidence (real Redis and Kafka).

A record is applied, or it is a proven redelivery (the same partition and an offset
already applied), a benign duplicate (logged), a stray moved once to its run's
partition, or a dead letter with its reason. Offsets are only compared within one
partition.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from switchyard.engine.processor import InboxProcessor, InboxRecord, Outcome
from switchyard.engine.store import keys
from switchyard.engine.store.plan import ApplyPlan
from switchyard.engine.store.runs import RunStore
from switchyard.schemas import NodeRunUpdated, RunTriggered, encode, node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.partitioning import partition_of
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.integration.engine_support import (
    Driver,
    define_two_kafka_steps,
    make_processor,
    new_run_id,
    read_all,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def workflow(driver: Driver) -> str:
    return await define_two_kafka_steps(driver, "parts")


@pytest.fixture
def processor(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer, templates: Any
) -> InboxProcessor:
    return make_processor(topics, redis, producer, templates)


class Records:
    """Inbox records of one test, at the partition and offset the test says."""

    def __init__(self, settings: Settings) -> None:
        self.topic = TopicRegistry.from_settings(settings).inbox.name
        self.partitions = settings.inbox_partitions

    def home(self, run_id: str) -> int:
        return partition_of(run_id, self.partitions)

    def tag(self, run_id: str) -> str:
        """The hash tag of the run's keys: its home partition's."""
        return keys.tag_of(run_id, self.partitions)

    def at(
        self, run_id: str, offset: int, value: bytes, partition: int | None = None
    ) -> InboxRecord:
        where = self.home(run_id) if partition is None else partition
        return InboxRecord(self.topic, where, offset, run_id.encode(), value)

    def unreadable(self, run_id: str, offset: int, value: bytes) -> InboxRecord:
        """A record at the run's partition that names no run: guarded like a stray,
        per topic and partition, so it too gets a topic name of its own."""
        return InboxRecord(
            f"{self.topic}.replayed-{uuid.uuid4().hex[:6]}", self.home(run_id), offset,
            run_id.encode(), value,
        )  # fmt: skip

    def stray(self, run_id: str, offset: int, value: bytes) -> InboxRecord:
        """A record on another partition. Its offset is made up, so it is given a topic
        name of its own: moves are guarded per topic and partition, and real moves of
        other tests in this session must not meet it."""
        wrong = (self.home(run_id) + 1) % self.partitions
        return InboxRecord(
            f"{self.topic}.replayed-{uuid.uuid4().hex[:6]}", wrong, offset, run_id.encode(), value
        )


def _trigger(run_id: str, workflow: str) -> bytes:
    return encode(RunTriggered.model_validate({
        "runId": run_id, "workflowIdentifier": workflow, "createdBy": "tests",
        "triggeredAt": datetime.now(UTC),
    }))  # fmt: skip


def _update(run_id: str, node_run: str) -> bytes:
    return encode(NodeRunUpdated.model_validate({
        "runId": run_id, "nodeRunId": node_run, "status": "COMPLETED", "result": "SUCCESS",
        "output": {"done": True}, "sentAt": datetime.now(UTC),
    }))  # fmt: skip


async def _letters(settings: Settings, run_id: str) -> list[str]:
    topic = TopicRegistry.from_settings(settings).dead_letter.name
    found = [orjson.loads(r.value) for r in await read_all(settings, topic)]
    return [letter["code"] for letter in found if letter["key"] == run_id]


async def test_every_record_not_applied_is_a_redelivery_a_duplicate_a_move_or_a_dead_letter(
    topics: Settings, processor: InboxProcessor, redis: aioredis.Redis, workflow: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    records = Records(topics)
    run, moved, legacy = new_run_id(), new_run_id(), new_run_id()
    work = node_run_id(run, "work")
    trigger = records.at(run, 10, _trigger(run, workflow))
    stray = records.stray(moved, 7, _trigger(moved, workflow))
    seen: list[tuple[InboxRecord, Outcome]] = []

    async def handle(*batch: InboxRecord) -> list[Outcome]:
        outcomes = await processor.handle(batch)
        seen.extend(zip(batch, outcomes, strict=True))
        return outcomes

    assert await handle(trigger, records.at(run, 11, _update(run, work))) == [
        Outcome.APPLIED, Outcome.APPLIED,
    ]  # fmt: skip
    # The same records again (an uncommitted batch after a crash): proven redeliveries.
    assert await handle(trigger, records.at(run, 11, _update(run, work))) == [
        Outcome.REDELIVERED, Outcome.REDELIVERED,
    ]  # fmt: skip
    # The same final report at a new offset (a worker restarted before committing).
    with caplog.at_level(logging.INFO, logger="switchyard.engine"):
        assert await handle(records.at(run, 12, _update(run, work))) == [Outcome.DUPLICATE]
    assert "duplicate_update" in caplog.text
    # A stray (librdkafka's partitioner) is moved, once even when redelivered.
    assert await handle(stray) == [Outcome.MOVED]
    assert await handle(stray) == [Outcome.REDELIVERED]
    # Not decodable; an update of a node run the run doesn't have.
    bad = [
        records.unreadable(run, 13, b"{not json"),
        records.at(run, 14, _update(run, "wfnr_AAAAAAAAAAAAAAAA")),
    ]
    assert await handle(*bad) == [Outcome.DEAD_LETTERED, Outcome.DEAD_LETTERED]
    # A run whose stored offset is of another partition: never compared, dead-lettered.
    assert await handle(records.at(legacy, 3, _trigger(legacy, workflow))) == [Outcome.APPLIED]
    elsewhere = (records.home(legacy) + 5) % records.partitions
    await redis.hset(keys.run(legacy, records.tag(legacy)), "partition", str(elsewhere))
    legacy_update = records.at(legacy, 4, _update(legacy, node_run_id(legacy, "work")))
    assert await handle(legacy_update) == [Outcome.DEAD_LETTERED]

    # The evidence of each path.
    inbox = TopicRegistry.from_settings(topics).inbox.name
    republished = [r for r in await read_all(topics, inbox) if r.key == moved.encode()]
    assert [(r.partition, orjson.loads(r.value)["runId"]) for r in republished] == [
        (records.home(moved), moved)
    ]
    store = RunStore(processor.store.client, records.partitions)
    assert await store.get(moved) is None  # not applied where it was
    assert sorted(await _letters(topics, run)) == ["undecodable", "unknown_node_run"]
    assert await _letters(topics, legacy) == ["partition_mismatch"]
    stored = await redis.hmget(keys.run(run, records.tag(run)), ["offset", "partition"])
    assert stored == [b"14", str(records.home(run)).encode()]
    # Every record handled has exactly one of the outcomes, and the counter agrees.
    assert len(seen) == 11
    assert sum(processor.outcomes.values()) == len(seen)
    assert {outcome for _, outcome in seen} == set(Outcome)


async def test_the_apply_script_refuses_a_plan_from_another_partition(
    topics: Settings, redis: aioredis.Redis
) -> None:
    """The script's own guard: offsets of two partitions are never compared."""
    run = new_run_id()
    partitions = TopicRegistry.from_settings(topics).inbox.partitions
    store = RunStore(redis, partitions)
    # Every plan names the run's keys (its tag), whatever partition it records.
    tag = keys.tag_of(run, partitions)
    assert await store.apply([ApplyPlan(run, 50, "1:50", partition=3, tag=tag)]) == [1]
    assert await store.apply([ApplyPlan(run, 40, "1:40", partition=3, tag=tag)]) == [0]
    # A higher offset of another partition would have "won" before partitions were kept.
    assert await store.apply([ApplyPlan(run, 90, "1:90", partition=4, tag=tag)]) == [-1]
    assert await redis.hmget(keys.run(run, tag), ["offset", "partition"]) == [b"50", b"3"]
