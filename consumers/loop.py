"""A consumer loop with manual commits: the base of the built-in executors.

Offsets are committed only after every message of a fetched batch has been handled
and its report sent, so a crash redelivers unfinished work (at least once); the
node-run id in each message lets the engine ignore a second completion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

log = logging.getLogger("switchyard.consumers")

Handler = Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]]


class ConsumerLoop:
    """Consumes ``topic`` in group ``group`` and calls ``handler`` for each record.

    Up to ``concurrency`` records run at once; a batch is committed when all of it is
    done. ``handler`` must not raise (it reports failures as node-run results); if it
    does, the error is logged and the record counts as handled, so one poison message
    can't stall the partition.
    """

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        group: str,
        handler: Handler,
        concurrency: int = 32,
        max_records: int = 200,
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_records,
        )
        self._handler = handler
        self._limit = asyncio.Semaphore(concurrency)
        self._stopping = asyncio.Event()
        self._state = "new"
        self.handled = 0

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"ConsumerLoop.start() called when {self._state}")
        await self._consumer.start()
        self._state = "started"

    async def run(self) -> None:
        """Consume until :meth:`stop`; the batch in hand is finished and committed first."""
        while not self._stopping.is_set():
            batches = await self._consumer.getmany(timeout_ms=200)
            if not batches:
                continue
            await asyncio.gather(
                *(self._guarded(r) for records in batches.values() for r in records)
            )
            await self._consumer.commit(
                {tp: records[-1].offset + 1 for tp, records in batches.items()}
            )
            self.handled += sum(len(records) for records in batches.values())

    async def _guarded(self, record: ConsumerRecord[bytes, bytes]) -> None:
        async with self._limit:
            try:
                await self._handler(record)
            except Exception:
                log.exception("handler failed for %s/%s", record.partition, record.offset)

    def stop_soon(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        self._stopping.set()
        if self._state == "started":
            await self._consumer.stop()
        self._state = "stopped"

    async def committed(self, tp: TopicPartition) -> int | None:
        result: int | None = await self._consumer.committed(tp)
        return result
