"""The aiokafka loop's pipeline: a batch is decided while the one before is being
published, batches are published in order, and commits go beside the next batch, in
order, coalesced while one is in flight, all through before partitions are revoked.
The processor and consumer are stand-ins that record calls (the order of calls is
under test here; the chaos and redelivery tests run the real thing)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from switchyard.engine.inbox_kafka import KafkaInbox, _FinishBeforeRevoke
from switchyard.engine.processor import InboxRecord, Outcome, Prepared
from switchyard.schemas.settings import Settings

TOPIC = "inbox"


class _Processor:
    """Records what it prepares and finishes; ``publishing`` holds each finish."""

    def __init__(self) -> None:
        self.handled: list[int] = []
        self.calls: list[tuple[str, int]] = []  # (prepare | finish, first offset)
        self.publishing = asyncio.Event()
        self.publishing.set()

    async def prepare(self, records: Sequence[InboxRecord]) -> Prepared:
        self.handled += [r.offset for r in records]
        self.calls.append(("prepare", records[0].offset))
        return Prepared(records, [], [], [], [None] * len(records), {}, (0.0, 0.0, 0.0))

    async def finish(self, prepared: Prepared) -> list[Outcome]:
        self.calls.append(("finish", prepared.records[0].offset))
        await self.publishing.wait()
        self.calls.append(("finished", prepared.records[0].offset))
        return [Outcome.APPLIED for _ in prepared.records]


class _Consumer:
    """Commits wait for ``release`` and are recorded in the order sent."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.release = asyncio.Event()

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self.release.wait()
        self.commits.append(dict(offsets))


def _fetched(partition: int, *offsets: int) -> dict[TopicPartition, list[Any]]:
    records = [
        ConsumerRecord(TOPIC, partition, o, 0, 0, b"k", b"v", None, 1, 1, ()) for o in offsets
    ]
    return {TopicPartition(TOPIC, partition): records}


async def _inbox() -> tuple[KafkaInbox, _Processor, _Consumer]:
    processor = _Processor()
    inbox = KafkaInbox(Settings(kafka_bootstrap_servers="127.0.0.1:1"), processor)  # type: ignore[arg-type]
    await inbox.consumer.stop()  # never started: only its place is taken
    consumer = _Consumer()
    inbox.consumer = consumer
    return inbox, processor, consumer


async def test_batches_go_on_while_a_commit_is_in_flight_and_later_offsets_coalesce() -> None:
    inbox, processor, consumer = await _inbox()
    # Within a bound: a loop that awaited its commit would hang here.
    await asyncio.wait_for(inbox._handle(_fetched(0, 10, 11)), 5)
    await asyncio.sleep(0)  # the commit task starts: it waits on the broker
    await asyncio.wait_for(inbox._handle(_fetched(0, 12)), 5)  # the first commit still waits
    await asyncio.wait_for(inbox._handle(_fetched(1, 5)), 5)
    assert processor.handled == [10, 11, 12, 5]
    assert consumer.commits == []  # nothing committed before the broker answers

    consumer.release.set()
    await inbox.flush_commits()
    p0, p1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    # The first commit holds the first batch only; the two handled meanwhile go together.
    assert consumer.commits == [{p0: 12}, {p0: 13, p1: 6}]
    assert inbox.committed == {p0: 13, p1: 6}


async def test_a_revoke_waits_until_every_handled_batch_is_committed() -> None:
    inbox, _, consumer = await _inbox()
    await asyncio.wait_for(inbox._handle(_fetched(2, 7)), 5)
    listener = _FinishBeforeRevoke(inbox)
    revoking = asyncio.create_task(listener.on_partitions_revoked([TopicPartition(TOPIC, 2)]))
    await asyncio.sleep(0.05)
    assert not revoking.done()  # held until the commit is through
    consumer.release.set()
    await asyncio.wait_for(revoking, 5)
    assert consumer.commits == [{TopicPartition(TOPIC, 2): 8}]
    assert inbox.committed == {}  # whoever owns the partitions next commits them


async def test_a_batch_is_decided_while_the_one_before_is_published_and_published_after_it(
) -> None:  # fmt: skip
    inbox, processor, consumer = await _inbox()
    consumer.release.set()
    processor.publishing.clear()  # the broker holds every publish
    await asyncio.wait_for(inbox._handle(_fetched(0, 1)), 5)
    await asyncio.sleep(0.01)
    decided = asyncio.create_task(inbox._handle(_fetched(0, 2)))
    await asyncio.sleep(0.05)
    # The second batch is decided and applied; its publish waits for the first's.
    assert processor.calls == [("prepare", 1), ("finish", 1), ("prepare", 2)]
    assert consumer.commits == []
    processor.publishing.set()
    await asyncio.wait_for(decided, 5)
    await inbox.flush_commits()
    assert processor.calls == [
        ("prepare", 1), ("finish", 1), ("prepare", 2), ("finished", 1),
        ("finish", 2), ("finished", 2),
    ]  # fmt: skip
    p0 = TopicPartition(TOPIC, 0)
    assert consumer.commits[0] == {p0: 2}  # the first batch's, once it was published
    assert inbox.committed == {p0: 3}
