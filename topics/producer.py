"""The one Kafka producer of a process: idempotent, acks from all replicas, and the
partition of every message chosen by us from its key (``topics/partitioning.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaProducer

from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options
from switchyard.topics.partitioning import partition_of
from switchyard.topics.telemetry import tracing

# A message for send_many: topic, key, value, partition (None: the key's), headers.
Outgoing = tuple[str, str | bytes, bytes, int | None, Sequence[tuple[str, bytes]] | None]


class EventProducer:
    """Sends keyed messages; ``send`` queues, ``flush_sent`` awaits a batch's acks.

    Lifecycle: ``start()`` once (a second start is an error), ``stop()`` is idempotent.
    """

    def __init__(self, settings: Settings, *, linger_ms: int = 2) -> None:
        self._producer = AIOKafkaProducer(
            **kafka_options(settings),
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_request_size=settings.kafka_max_message_bytes,
        )
        self._state = "new"
        # Partition counts never change (the registry fixes them at creation), so one
        # metadata look-up per topic is enough.
        self._partitions: dict[str, int] = {}

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"EventProducer.start() called when {self._state}")
        await self._producer.start()
        self._state = "started"

    async def stop(self) -> None:
        if self._state == "started":
            await self._producer.stop()
        self._state = "stopped"

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def reachable(self) -> int:
        """How many brokers answered a metadata request now (readiness: raises when
        none did)."""
        if self._state != "started":
            raise RuntimeError(f"the producer is {self._state}, not started")
        cluster = await self._producer.client.fetch_all_metadata()
        return len(cluster.brokers())

    async def partition_count(self, topic: str) -> int:
        """How many partitions ``topic`` has, from the broker's metadata (cached)."""
        count = self._partitions.get(topic)
        if count is None:
            found = await self._producer.partitions_for(topic)
            count = self._partitions[topic] = len(found)
        return count

    async def existing_topics(self) -> set[str]:
        """The topics the cluster has now (one metadata request)."""
        cluster = await self._producer.client.fetch_all_metadata()
        return set(cluster.topics())

    async def send(
        self,
        topic: str,
        key: str | bytes,
        value: bytes,
        *,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[object]:
        """Queue one message; the returned future resolves when the broker has it.

        The partition is the key's murmur2 partition (Kafka's Java default) unless
        given: set explicitly, so no client library's partitioner can move a run.
        Without ``headers``, a traced process sends the current span's trace context
        (``traceparent``), so whatever consumes the message continues the trace.
        """
        raw_key = key.encode() if isinstance(key, str) else key
        if partition is None:
            partition = partition_of(raw_key, await self.partition_count(topic))
        if headers is None and tracing.enabled():
            headers = tracing.headers_of() or None
        future: asyncio.Future[object] = await self._producer.send(
            topic, value, key=raw_key, partition=partition,
            headers=list(headers) if headers else None,  # aiokafka takes only a list
        )  # fmt: skip
        return future

    async def send_many(self, messages: Iterable[Outgoing]) -> list[asyncio.Future[object]]:
        """Queue many messages as one record batch per topic partition (in their order
        within each); the futures resolve when the broker has the batches.

        What :meth:`send` does per message, paid per partition: a batch's 300 messages
        to 24 partitions cost 24 futures and appends to the accumulator, not 300.
        """
        grouped: dict[tuple[str, int], list[Outgoing]] = {}
        for message in messages:
            topic, key, _, partition, _ = message
            if partition is None:
                raw_key = key.encode() if isinstance(key, str) else key
                partition = partition_of(raw_key, await self.partition_count(topic))
            grouped.setdefault((topic, partition), []).append(message)
        traced = tracing.enabled()
        futures: list[asyncio.Future[object]] = []
        for (topic, partition), group in grouped.items():
            builder = self._producer.create_batch()
            for _, key, value, _, headers in group:
                if headers is None and traced:
                    headers = tracing.headers_of() or None
                raw_key = key.encode() if isinstance(key, str) else key
                args = {"timestamp": None, "key": raw_key, "value": value,
                        "headers": list(headers) if headers else []}  # fmt: skip
                if builder.append(**args) is None:  # full: send it, go on in a new one
                    sent = await self._producer.send_batch(builder, topic, partition=partition)
                    futures.append(sent)
                    builder = self._producer.create_batch()
                    builder.append(**args)
            futures.append(await self._producer.send_batch(builder, topic, partition=partition))
        return futures

    async def send_and_wait(self, topic: str, key: str | bytes, value: bytes) -> None:
        await (await self.send(topic, key, value))

    @staticmethod
    async def flush_sent(futures: Iterable[asyncio.Future[object]]) -> None:
        """Wait until every queued message is acknowledged (raises the first failure)."""
        pending = list(futures)
        if pending:
            await asyncio.gather(*pending)
