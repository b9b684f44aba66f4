"""A plain aiokafka consumer loop drives the inbox: the default driver.

DESIGN.md lets the faust driver be swapped for this one behind the same interface
when faust shows a fault the design can't absorb. It did, twice (see the README's
"Inbox drivers"): a stalled partition (faust's ``wait_empty`` never finishing after
a rebalance, completions left unapplied until a restart), and a latency floor of
about 90 ms per hop from its thread-delegated fetches with a hard-coded
``fetch_max_wait_ms`` of 1500, with half the engine's CPU spent in faust.

The loop: fetch a batch, have :class:`InboxProcessor` decide and apply it in Redis
(shielded, retried while Redis is away), then publish its messages and forget its
outbox while the next batch is fetched and decided, then commit its offsets beside
the batch after. Batches are published in order, each after the one before, and a
batch's offsets are committed only once its Redis step and its outbox are done. A
crash before the commit redelivers the batch and the stored offsets make the replay
a no-op. On a rebalance the batches in hand are published and committed before
partitions move.

With ``redis_wait_replicas`` > 0 a commit first waits for that many Redis replicas to
acknowledge the writes of the batches it covers (``store/replication.py``); when they
don't, nothing more is committed and the process stops (``on_failure``) so that a
restart redelivers the batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from switchyard.engine import metrics
from switchyard.engine.processor import (
    InboxProcessor,
    InboxRecord,
    Prepared,
    finish_batch,
    handle_batch,
    prepare_batch,
)
from switchyard.engine.store.replication import ReplicaAcks, ReplicasBehind
from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options
from switchyard.topics.registry import TopicRegistry

log = logging.getLogger("switchyard.engine")


def _terminate(_: Exception) -> None:
    # The process's own SIGTERM path: stop taking work, drain what can be, exit.
    os.kill(os.getpid(), signal.SIGTERM)


# aiokafka ships no type information, so its base class is Any to mypy.
class _FinishBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, inbox: KafkaInbox) -> None:
        self.inbox = inbox

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # The batch in hand is applied and committed before another engine takes over.
        async with self.inbox.busy:
            await self.inbox.flush_commits()
        self.inbox.committed.clear()  # whoever owns them next commits them

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        partitions = sorted(tp.partition for tp in assigned)
        log.info("inbox partitions assigned: %s", partitions)
        # What an engine that died holding them applied but never published: without
        # this, a run whose next node's request is among it waits until some engine
        # restarts. Before any new record of them is fetched, so the order is kept.
        try:
            recovered = await self.inbox.processor.recover(partitions)
        except Exception:  # the next start recovers them; the consumer must go on
            log.exception("re-publishing the outbox leftovers of %s failed", partitions)
            return
        if recovered:
            log.info("re-published %d outbox steps left in partitions %s", recovered, partitions)


class KafkaInbox:
    """Runs an :class:`InboxProcessor` over the inbox topic with an aiokafka consumer.

    Lifecycle: ``start()`` once (a second start is an error), ``stop()`` idempotent;
    ``processed`` counts the records handled.
    """

    def __init__(
        self,
        settings: Settings,
        processor: InboxProcessor,
        *,
        on_failure: Callable[[Exception], None] = _terminate,
    ) -> None:
        self.settings = settings
        self.processor = processor
        self.topic = TopicRegistry.from_settings(settings).inbox.name
        session_ms = int(settings.engine_session_timeout_s * 1000)
        self.consumer = AIOKafkaConsumer(
            **kafka_options(settings),
            group_id=settings.engine_group,
            group_instance_id=settings.engine_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.engine_batch_max,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(1000, session_ms // 3),
            # With fetch_min_bytes=1 the broker answers as soon as a record arrives;
            # this bounds only how long an idle fetch waits.
            fetch_max_wait_ms=100,
        )
        self.busy = asyncio.Lock()
        self.processed = 0
        # The offsets this engine last committed, per partition (the inbox lag's base).
        self.committed: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        # Offsets of handled batches not yet sent in a commit, and the commit in flight.
        self._uncommitted: dict[TopicPartition, int] = {}
        self._committing: asyncio.Task[None] | None = None
        self._finishing: asyncio.Task[None] | None = None  # the batch being published
        self._stopping = asyncio.Event()
        self._state = "new"
        # None (no WAIT, no cost) unless redis_wait_replicas asks for replicas.
        self._replicas = (
            ReplicaAcks(processor.store.client, settings.redis_wait_replicas,
                        settings.redis_wait_timeout_ms)
            if settings.redis_wait_replicas else None
        )  # fmt: skip
        self._on_failure = on_failure
        self.failed: ReplicasBehind | None = None  # set once: nothing is committed after

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"KafkaInbox.start() called when {self._state}")
        self._state = "starting"
        recovered = await self.processor.recover()
        if recovered:
            log.info("re-published %d outbox steps left by an earlier crash", recovered)
        self.consumer.subscribe([self.topic], listener=_FinishBeforeRevoke(self))
        await self.consumer.start()
        metrics.watch("inbox_lag", self._refresh_lag)
        metrics.watch("node_runs_in_flight", self._refresh_in_flight)
        self._task = asyncio.create_task(self._run(), name="switchyard-inbox")
        self._state = "started"

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                fetched = await self.consumer.getmany(timeout_ms=100)
            except KafkaError as error:  # the broker is away: aiokafka reconnects
                log.warning("inbox fetch failed (%r); retrying", error)
                await asyncio.sleep(0.5)
                continue
            if fetched:
                # Shielded: stop() waits for the batch rather than cancelling it.
                await asyncio.shield(self._handle(fetched))

    async def _handle(
        self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        async with self.busy:
            records = [
                InboxRecord(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
                for batch in fetched.values()
                for r in batch
            ]
            offsets = {tp: batch[-1].offset + 1 for tp, batch in fetched.items()}
            # Decided and applied while the batch before is still being published;
            # published only after it, so messages keep their order per partition.
            prepared = await prepare_batch(self.processor, records)
            await self._finished()
            if prepared is None:  # a fault of some event: one record at a time
                await handle_batch(self.processor, records)
                self._queue_commit(offsets)
            else:
                self._finishing = asyncio.create_task(
                    self._finish(prepared, offsets), name="inbox-publish"
                )
            self.processed += len(records)

    async def _finish(self, prepared: Prepared, offsets: dict[TopicPartition, int]) -> None:
        await finish_batch(self.processor, prepared)
        self._queue_commit(offsets)

    async def _finished(self) -> None:
        """Wait until the batch being published is published (never raises)."""
        if self._finishing is not None:
            await self._finishing
            self._finishing = None

    def _queue_commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit ``offsets`` beside the next batch; offsets of batches handled while a
        commit is in flight go together in the commit after it."""
        if self._replicas is not None:
            self._replicas.wrote((tp.partition for tp in offsets), self.processor.inbox_partitions)
        self._uncommitted.update(offsets)
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit(), name="inbox-commit")

    async def _commit(self) -> None:
        """Commit what is handled, in order, until nothing is left (one commit in flight)."""
        while self._uncommitted and self.failed is None:
            offsets, self._uncommitted = self._uncommitted, {}
            if self._replicas is not None and not await self._replicated():
                return
            try:
                await self.consumer.commit(offsets)
            except Exception as error:  # CommitFailedError, KafkaError, IllegalStateError…
                # Partitions moved or the broker is away: the batches come back to
                # whoever owns them, and their stored offsets make that a no-op.
                log.warning("inbox commit failed (%r); the batches will be redelivered", error)
            else:
                self.committed.update(offsets)

    async def _replicated(self) -> bool:
        """The replicas have the writes of what is about to be committed; False (and the
        process told to stop) when they don't after every WAIT."""
        assert self._replicas is not None
        try:
            await self._replicas.confirm()
        except ReplicasBehind as error:
            log.critical("%s; the engine stops consuming and exits", error)
            self.failed = error
            self._uncommitted.clear()  # later offsets would cover these: never commit them
            self._stopping.set()
            self._on_failure(error)
            return False
        return True

    async def flush_commits(self) -> None:
        """Wait until every handled batch is published and its offsets committed (or
        given up)."""
        await self._finished()
        if self._committing is not None:
            await self._committing
        if self._uncommitted:
            await self._commit()

    async def _refresh_lag(self) -> None:
        await metrics.refresh_inbox_lag(self.consumer, self.committed)

    async def _refresh_in_flight(self) -> None:
        await metrics.refresh_in_flight(self.processor.store.client, self.processor.store.tags())

    async def stop(self) -> None:
        if self._state in {"new", "stopped"}:
            self._state = "stopped"
            return
        self._state = "stopping"
        self._stopping.set()
        metrics.unwatch("inbox_lag", self._refresh_lag)
        metrics.unwatch("node_runs_in_flight", self._refresh_in_flight)
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush_commits()
        await self.consumer.stop()
        if self._replicas is not None:
            await self._replicas.aclose()
        self._state = "stopped"
