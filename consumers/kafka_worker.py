"""The Kafka worker: node-run requests in, ``NodeRunUpdated`` on the inbox out.

Delivery is at least once. Offsets are committed only after every record of a
fetched batch, and of every batch fetched before it, has been handled and its update
acknowledged by the broker, so a worker that dies mid-handler leaves its batch
uncommitted and the group hands it to another worker. Batches overlap: the next is
fetched while the one in hand runs (:mod:`switchyard.consumers.pipeline`).
Duplicates are told apart by node-run id: this process skips a request it is already
running or has finished, and the engine ignores (dead-letters) a second completion of
a node run, so a node run is completed once in the run state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import CommitFailedError, IllegalStateError

from switchyard.consumers import metrics
from switchyard.consumers.context import Handler, Reporter, WorkContext, utc_now
from switchyard.consumers.pipeline import BatchPipeline
from switchyard.consumers.running import run_handler
from switchyard.schemas import (
    AiRequest,
    DecodeError,
    EntityRequest,
    NodeRunRequest,
    NodeRunUpdated,
    WebhookRequest,
    decode,
)
from switchyard.schemas import encode as encode_event
from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from switchyard.topics.telemetry import tracing
from switchyard.topics.telemetry.log_context import log_context
from switchyard.topics.telemetry.ops import OpsServer

log = logging.getLogger("switchyard.worker")

# The built-in executors' requests are messages of their own (the payload is the whole
# request); a KAFKA node's is its rendered payload.
MessageT = TypeVar("MessageT", NodeRunRequest, WebhookRequest, AiRequest, EntityRequest)

_REMEMBERED = 10_000  # finished node-run ids kept to skip redeliveries
# Commits at most this often: one per handled record at low load cost the worker and
# the broker a request each, and only redelivery after a crash depends on them.
_COMMIT_INTERVAL = 0.05
# Batches unfinished at once (see BatchPipeline): fewer makes batches grow sooner under
# load; more lets more slow batches run before a fetch waits for one of them.
_MAX_BATCHES = 4
_BUSY_LINGER = 0.01  # seconds a fetch waits while batches are in hand


class KafkaReporter:
    """Produces updates to the inbox, keyed by run id (the engine's partitioning)."""

    def __init__(self, producer: EventProducer, inbox: str) -> None:
        self.producer = producer
        self.inbox = inbox

    async def report(self, update: NodeRunUpdated) -> None:
        await self.producer.send_and_wait(self.inbox, update.run_id, encode_event(update))


def default_group(settings: Settings, node_identifiers: Collection[str],
                  workflows: Collection[str]) -> str:  # fmt: skip
    """Workers with the same filters share work; workers with different filters must
    not (each would skip the other's records), so the filters name the group."""
    parts = [f"wf={w}" for w in sorted(workflows)] + [f"node={n}" for n in sorted(node_identifiers)]
    return f"{settings.engine_group}-worker" + (f"-{'-'.join(parts)}" if parts else "")


class KafkaWorker(Generic[MessageT]):
    """Consumes node-run requests and runs ``handler`` for each; see the module doc.

    ``node_identifiers`` / ``workflows`` keep only requests of those nodes or
    workflows (others are skipped and committed). ``instance_id`` (unique per process)
    makes a restart rejoin at once (static membership). Up to ``concurrency`` handlers run
    at once; a batch holds at most ``max_records``, and at most ``max_in_flight``
    records (default ``concurrency + max_records``) are in hand across batches.
    Lifecycle: ``start()``, then ``run()`` until ``stop_soon()``; or ``async with
    worker:`` which runs it in the background and, on exit, lets in-flight handlers
    finish and commits.

    ``metrics_name`` is the ``node`` label of its metrics (default: the node
    identifier when ``node_identifiers`` is given, else the handler's name; see
    :mod:`switchyard.consumers.metrics`). ``ops_port`` (0: off) serves ``/metrics``,
    ``/healthz`` and ``/readyz`` (checks ``consumer`` and ``kafka``) on
    ``settings.ops_host`` from ``start()`` to the end of ``stop()``.
    """

    def __init__(
        self,
        settings: Settings,
        handler: Handler,
        *,
        node_identifiers: Collection[str] = (),
        workflows: Collection[str] = (),
        group: str | None = None,
        concurrency: int = 32,
        max_records: int = 100,
        max_in_flight: int | None = None,
        session_timeout_ms: int = 10_000,
        instance_id: str | None = None,
        producer: EventProducer | None = None,
        reporter: Reporter | None = None,
        clock: Callable[[], datetime] = utc_now,
        topic: str | None = None,
        message_type: type[MessageT] | None = None,
        metrics_name: str | None = None,
        ops_port: int = 0,
    ) -> None:
        registry = TopicRegistry.from_settings(settings)
        self.handler = handler
        self.metrics_name = metrics_name
        self.node_identifiers = frozenset(node_identifiers)
        self.workflows = frozenset(workflows)
        # WebhookRequest for the built-in webhook executor; NodeRunRequest otherwise.
        self.message_type: type[Any] = message_type or NodeRunRequest
        self.clock = clock
        self._owns_producer = producer is None and reporter is None
        self._producer = producer or (EventProducer(settings) if self._owns_producer else None)
        self.reporter: Reporter = reporter or KafkaReporter(
            self._producer,  # type: ignore[arg-type]  # set whenever reporter is None
            registry.inbox.name,
        )
        self.topic = topic or registry.node_run_requests.name
        self.group = group or default_group(settings, node_identifiers, workflows)
        self._consumer = AIOKafkaConsumer(
            self.topic,
            **kafka_options(settings),
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_records,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(500, session_timeout_ms // 4),
            # Static membership: a restarted worker with the same id gets its
            # partitions back at once instead of waiting out the session timeout.
            group_instance_id=instance_id,
        )
        self._limit = asyncio.Semaphore(concurrency)
        self.max_records = max_records
        # Enough to keep every handler slot busy with a full batch queued behind them.
        self.max_in_flight = max_in_flight or concurrency + max_records
        self.max_batches = _MAX_BATCHES
        self._stopping = asyncio.Event()
        self._state = "new"
        self._running: set[str] = set()
        self._done: OrderedDict[str, None] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.handled = 0  # records taken off the topic (run, skipped or filtered)
        self.completed = 0  # handlers run to an update
        checks = metrics.kafka_worker_checks(self._consumer, self.topic, self._producer)
        self.ops = OpsServer(settings.ops_host, ops_port, checks)

    @property
    def consumer(self) -> AIOKafkaConsumer:
        """The group member consuming :attr:`topic` (readiness reads its assignment)."""
        return self._consumer

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"KafkaWorker.start() called when {self._state}")
        await self.ops.start()  # first: a taken port fails before anything connects
        if self._owns_producer and self._producer is not None:
            await self._producer.start()
        await self._consumer.start()
        self._state = "started"

    async def run(self) -> None:
        """Consume until :meth:`stop_soon`; the batches in hand are finished and committed.

        Batching adapts to the load (see :mod:`switchyard.consumers.pipeline`): a fetch
        returns what has arrived, one record when idle, up to ``max_records`` under a
        backlog, and the next fetch does not wait for the batch in hand, only for room
        in the pipeline (``max_in_flight`` records).
        """
        pipeline = BatchPipeline(
            self.max_in_flight, self._commit, _COMMIT_INTERVAL, self.max_batches
        )
        pipeline.start()
        try:
            while not self._stopping.is_set():
                room = await pipeline.room()
                if pipeline.in_flight:
                    # Busy: let what arrives next gather into one batch (idle, a record
                    # is fetched at once). Without it, a saturated executor fetched and
                    # ran a batch per record or two, and the whole path got slower.
                    await asyncio.sleep(_BUSY_LINGER)
                batches = await self._consumer.getmany(
                    timeout_ms=200, max_records=min(room, self.max_records)
                )
                if batches:
                    records = [r for rs in batches.values() for r in rs]
                    offsets = {tp: rs[-1].offset + 1 for tp, rs in batches.items()}
                    pipeline.add(self._batch(records), offsets, len(records))
        except BaseException:
            # Cancelled (a shutdown past its grace) or failed: the handlers in hand are
            # cancelled, as they were when a batch ran inside this loop; unfinished
            # records stay uncommitted and are redelivered.
            pipeline.abandon()
            raise
        await pipeline.drain()

    async def _batch(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        await asyncio.gather(*(self._one(r) for r in records))
        self.handled += len(records)

    def stop_soon(self) -> None:
        """Stop taking work; :meth:`run` returns once the batch in hand is done."""
        self._stopping.set()

    async def stop(self) -> None:
        """Drain (when running in the background) and close; idempotent."""
        self._stopping.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task
        if self._state == "started":
            await self._consumer.stop()
            if self._owns_producer and self._producer is not None:
                await self._producer.stop()
        await self.ops.stop()
        self._state = "stopped"

    async def __aenter__(self) -> KafkaWorker[MessageT]:
        await self.start()
        self._task = asyncio.create_task(self.run(), name="kafka-worker")
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _commit(self, offsets: dict[Any, int]) -> None:
        # Only partitions still ours: one that a rebalance took away would fail the whole
        # request, and its new owner redelivers from its last commit anyway.
        assigned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as error:
            # A rebalance took the partitions away mid-batch: their new owner
            # redelivers what we did, and node-run ids make the repeat harmless.
            log.warning("commit after rebalance failed (%s); records will be redelivered", error)

    def _wanted(self, message: MessageT) -> bool:
        context = message.context
        if self.workflows and context.workflow_identifier not in self.workflows:
            return False
        return not self.node_identifiers or context.node_identifier in self.node_identifiers

    async def _one(self, record: ConsumerRecord[bytes, bytes]) -> None:
        with log_context(topic=record.topic, partition=record.partition, offset=record.offset):
            await self._handle(record)

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            message = decode(record.value or b"", self.message_type)
        except DecodeError as error:
            # No node-run id to report to: the engine only sends valid requests, so
            # this is a foreign producer's message, skipped with a trace.
            log.error("skipping undecodable record %s/%s: %s",
                      record.partition, record.offset, error.reason)  # fmt: skip
            return
        # One piece of work per node run; an INPUT node's notifications are one each.
        node_run_id = (
            message.work_key if isinstance(message, WebhookRequest) else message.context.node_run_id
        )
        if not self._wanted(message) or node_run_id in self._running or node_run_id in self._done:
            return
        self._running.add(node_run_id)
        try:
            async with self._limit:
                context = message.context
                with (
                    log_context(run_id=context.workflow_run_id, node_run_id=context.node_run_id,
                                event_type=type(message).__name__),
                    self._span(record, message),  # the report is produced inside it
                ):  # fmt: skip
                    node = self._node(context.node_identifier)
                    reporter = metrics.counted(self.reporter, node)
                    ctx = self._context(message, reporter)
                    update = await run_handler(self.handler, ctx, node=node)
                    if update is not None:
                        await reporter.report(update)
                self.completed += 1
        finally:
            self._running.discard(node_run_id)
        self._done[node_run_id] = None
        if len(self._done) > _REMEMBERED:
            self._done.popitem(last=False)

    def _span(
        self, record: ConsumerRecord[bytes, bytes], message: MessageT
    ) -> contextlib.AbstractContextManager[object]:
        """The span of handling one request, child of the trace context its record
        carries; nothing when tracing is off."""
        if not tracing.enabled():
            return contextlib.nullcontext()
        context = message.context
        attributes = {
            **tracing.record_attributes(record.topic, record.partition, record.offset),
            "switchyard.run_id": context.workflow_run_id,
            "switchyard.node_run_id": context.node_run_id,
            "switchyard.node_identifier": context.node_identifier,
            "switchyard.workflow_identifier": context.workflow_identifier,
        }
        name = f"worker.handle {context.node_identifier}"
        return tracing.record_span(name, record.headers or (), attributes)

    def _node(self, node_identifier: str) -> str:
        """The ``node`` label of a request's metrics (bounded by this worker's filters)."""
        if self.metrics_name is not None:
            return self.metrics_name
        return node_identifier if self.node_identifiers else metrics.handler_name(self.handler)

    def _context(self, message: MessageT, reporter: Reporter) -> WorkContext:
        context = message.context
        payload = message.payload if isinstance(message, NodeRunRequest) else message
        return WorkContext(
            run_id=context.workflow_run_id,
            node_run_id=context.node_run_id,
            node_identifier=context.node_identifier,
            workflow_identifier=context.workflow_identifier,
            payload=payload,
            reporter=reporter,
            clock=self.clock,
        )
