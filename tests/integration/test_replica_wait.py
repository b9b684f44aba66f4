"""The inbox commits a batch's offsets only once Redis replicas hold its writes
(``redis_wait_replicas``), against a private master and replica (``--replicaof``).

The processor and the consumer are stand-ins (as in ``tests/unit/engine/
test_inbox_commits.py``): the processor's batch writes a real key on the master, the
consumer records each commit with what the replica held at that moment. Stopping the
replica (SIGSTOP) stands for a replica that is behind or gone."""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from redis.asyncio.cluster import RedisCluster

from switchyard.engine.inbox_kafka import KafkaInbox
from switchyard.engine.processor import InboxRecord, Outcome, Prepared
from switchyard.engine.store import keys
from switchyard.engine.store.replication import ReplicaAcks, ReplicasBehind
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas.settings import Settings
from tests.helpers import until
from tests.helpers_cluster import RedisServer, redis_cluster, redis_pair

TOPIC = "inbox"


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    with redis_pair() as servers:
        yield servers


class _Store:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client


class _Processor:
    """Each batch SETs ``batch:<first offset>`` on the master: the write to replicate."""

    inbox_partitions = 12

    def __init__(self, client: aioredis.Redis, tag: str) -> None:
        self.store = _Store(client)
        self.tag = tag

    def key(self, offset: int) -> str:
        return f"sy:test:{self.tag}:batch:{offset}"

    async def prepare(self, records: Sequence[InboxRecord]) -> Prepared:
        await self.store.client.set(self.key(records[0].offset), "applied")
        return Prepared(records, [], [], [], [None] * len(records), {}, (0.0, 0.0, 0.0))

    async def finish(self, prepared: Prepared) -> list[Outcome]:
        return [Outcome.APPLIED for _ in prepared.records]


class _Consumer:
    """Records each commit with the replica's copy of the batch key it covers."""

    def __init__(self, replica: aioredis.Redis, processor: _Processor) -> None:
        self.replica = replica
        self.processor = processor
        self.commits: list[tuple[dict[TopicPartition, int], bytes | None]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        last = max(offsets.values()) - 1
        held = await self.replica.get(self.processor.key(last))
        self.commits.append((dict(offsets), held if isinstance(held, bytes) else None))


def _fetched(partition: int, offset: int) -> dict[TopicPartition, list[Any]]:
    record = ConsumerRecord(TOPIC, partition, offset, 0, 0, b"k", b"v", None, 1, 1, ())
    return {TopicPartition(TOPIC, partition): [record]}


@asynccontextmanager
async def _inbox(
    pair: tuple[RedisServer, RedisServer], replicas: int, timeout_ms: int
) -> AsyncIterator[tuple[KafkaInbox, _Consumer, list[Exception]]]:
    master, replica = pair
    client = aioredis.Redis.from_url(master.url)
    replica_client = aioredis.Redis.from_url(replica.url)
    processor = _Processor(client, uuid.uuid4().hex)
    failures: list[Exception] = []
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", redis_wait_replicas=replicas,
                        redis_wait_timeout_ms=timeout_ms)  # fmt: skip
    inbox = KafkaInbox(settings, processor, on_failure=failures.append)  # type: ignore[arg-type]
    await inbox.consumer.stop()  # never started: only its place is taken
    consumer = _Consumer(replica_client, processor)
    inbox.consumer = consumer
    try:
        yield inbox, consumer, failures
    finally:
        replica.process.send_signal(signal.SIGCONT)
        if inbox._replicas is not None:
            await inbox._replicas.aclose()
        await client.aclose()
        await replica_client.aclose()


async def _blocked_clients(server: RedisServer) -> int:
    async with aioredis.Redis.from_url(server.url) as client:
        return int((await client.info("clients"))["blocked_clients"])


async def _wait_calls(server: RedisServer) -> int:
    async with aioredis.Redis.from_url(server.url) as client:
        stats = await client.info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


async def test_the_commit_waits_for_a_stopped_replica_and_goes_once_it_is_back(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    master, replica = pair
    async with _inbox(pair, replicas=1, timeout_ms=3000) as (inbox, consumer, failures):
        replica.process.send_signal(signal.SIGSTOP)
        await inbox._handle(_fetched(0, 10))
        # The commit task is in WAIT on the master, the replica not answering.
        await until(lambda: _blocked_clients(master), lambda n: n >= 1)
        assert consumer.commits == []  # applied on the master, not committed
        replica.process.send_signal(signal.SIGCONT)
        await until(lambda: _commits(consumer), lambda n: n >= 1)
        assert consumer.commits == [({TopicPartition(TOPIC, 0): 11}, b"applied")]
        assert failures == []
        await inbox.flush_commits()


async def _commits(consumer: _Consumer) -> int:
    return len(consumer.commits)


async def test_a_replica_that_never_acknowledges_stops_the_inbox_without_committing(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    _, replica = pair
    async with _inbox(pair, replicas=1, timeout_ms=50) as (inbox, consumer, failures):
        replica.process.send_signal(signal.SIGSTOP)
        await inbox._handle(_fetched(0, 20))
        await inbox.flush_commits()  # every WAIT came back short
        assert len(failures) == 1
        assert isinstance(failures[0], ReplicasBehind)
        assert failures[0].acked == 0
        assert inbox.failed is failures[0]
        assert inbox._stopping.is_set()  # the fetch loop ends
        # A later batch is not committed either: its offsets would cover the first's.
        replica.process.send_signal(signal.SIGCONT)
        await inbox._handle(_fetched(0, 21))
        await inbox.flush_commits()
        assert consumer.commits == []
        assert inbox.committed == {}


async def test_no_wait_is_sent_when_the_setting_is_zero(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    master, _ = pair
    async with _inbox(pair, replicas=0, timeout_ms=1000) as (inbox, consumer, _failures):
        before = await _wait_calls(master)
        await inbox._handle(_fetched(1, 5))
        await inbox.flush_commits()
        assert [offsets for offsets, _ in consumer.commits] == [{TopicPartition(TOPIC, 1): 6}]
        assert await _wait_calls(master) == before
    # And with one replica asked for, one WAIT (after its probe write) per commit.
    async with _inbox(pair, replicas=1, timeout_ms=5000) as (inbox, consumer, failures):
        before = await _wait_calls(master)
        await inbox._handle(_fetched(1, 7))
        await inbox.flush_commits()
        assert consumer.commits == [({TopicPartition(TOPIC, 1): 8}, b"applied")]
        assert await _wait_calls(master) == before + 1
        assert failures == []


async def _replica_port(master: RedisServer) -> int:
    async with aioredis.Redis.from_url(master.url) as client:
        return int((await client.info("replication"))["slave0"]["port"])


async def test_on_a_cluster_the_master_of_each_written_partition_is_waited_on() -> None:
    with redis_cluster(3, replicas=1) as nodes:
        masters, by_port = nodes[:3], {node.port: node for node in nodes}
        cluster = RedisCluster(host="127.0.0.1", port=masters[0].port)
        acks = ReplicaAcks(cluster, replicas=1, timeout_ms=3000)
        try:
            await cluster.initialize()
            before = [await _wait_calls(master) for master in masters]
            # Partitions 0, 6 and 11 of 12 hash to the three masters' slot ranges.
            acks.wrote([0, 6, 11], 12)
            acks.wrote([1], 12)  # the same master as partition 0: one WAIT for both
            await acks.confirm()
            after = [await _wait_calls(master) for master in masters]
            assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]

            # The replica of partition 0's master stopped: that master is not confirmed.
            owner = cluster.get_node_from_key(keys.replication_probe(partition_tag(0, 12)[1:-1]))
            assert owner is not None
            master = by_port[int(owner.port)]
            replica = by_port[await _replica_port(master)]
            replica.process.send_signal(signal.SIGSTOP)
            try:
                acks.timeout_ms = 50
                acks.wrote([0], 12)
                with pytest.raises(ReplicasBehind) as behind:
                    await acks.confirm()
                assert behind.value.node == owner.name
                assert behind.value.acked == 0
            finally:
                replica.process.send_signal(signal.SIGCONT)
        finally:
            await acks.aclose()
            await cluster.aclose()
