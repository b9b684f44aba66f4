"""The trigger matcher (``switchyard triggers``): entity events become runs of the
workflows whose EVENT_TRIGGER matches them (rules in ``engine/event_triggers.py``).

One consumer group over the entity-events topic (several processes share its
partitions). Per fetched batch: the published workflows with event triggers are
read (latest versions, one round trip; parsed definitions are cached per version),
each event is matched, the ``RunTriggered`` events are produced to the inbox and
acknowledged by Kafka, and only then are the batch's offsets committed. A crash
before the commit redelivers the batch: the same derived run ids, which the engine
creates once. An undecodable event goes to the dead-letter topic with its reason;
a refused trigger (condition failed, chain too deep) is logged with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError
from redis.exceptions import RedisError

from switchyard.engine import metrics
from switchyard.engine.event_triggers import event_triggers, runs_for
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.engine.templates import Templates
from switchyard.schemas import RunTriggered, Workflow, encode
from switchyard.schemas.entities import EntityEvent
from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options
from switchyard.topics.dead_letter import DeadLetter
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from switchyard.topics.telemetry import tracing
from switchyard.topics.telemetry.log_context import log_context

log = logging.getLogger("switchyard.triggers")

Headers = tuple[tuple[str, bytes], ...]


@dataclass
class _Matched:
    """What one batch's records made: runs to start (each with the trace headers to
    send it with), dead letters, and each record's outcome for the metrics."""

    workflows: list[Workflow]
    triggers: list[tuple[RunTriggered, Headers | None]] = field(default_factory=list)
    letters: list[tuple[str, bytes]] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)


def utc_now() -> datetime:
    return datetime.now(UTC)


_RECENT = 1000


@dataclass
class MatchCounts:
    """What the matcher has done since it started; the ids of the latest events handled
    and the latest refusals are kept too (bounded), for tests and diagnosis."""

    events: int = 0
    started: int = 0
    refused: int = 0
    dead_lettered: int = 0
    handled: deque[str] = field(default_factory=lambda: deque(maxlen=_RECENT))
    refusals: deque[str] = field(default_factory=lambda: deque(maxlen=_RECENT))


async def workflows_with_event_triggers(store: WorkflowStore) -> list[Workflow]:
    """The latest live version of every workflow that has an EVENT_TRIGGER (parsed
    versions come from the store's cache: a version never changes)."""
    found = []
    for live in await store.live_versions():
        workflow = await store.get(live.identifier, live.version)
        if workflow is not None and event_triggers(workflow):
            found.append(workflow)
    return found


class TriggerMatcher:
    """Consumes entity events and starts the runs they trigger.

    Lifecycle: ``start()`` once, ``stop()`` idempotent (the batch in hand finishes).
    """

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        producer: EventProducer,
        templates: Templates,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.registry = TopicRegistry.from_settings(settings)
        self.topic = self.registry.entity_events.name
        self.workflows = WorkflowStore(redis)
        self.producer = producer
        self.templates = templates
        self.clock = clock
        self.counts = MatchCounts()
        self.consumer = AIOKafkaConsumer(
            **kafka_options(settings),
            group_id=settings.triggers_group,
            # A restarted matcher with the same id takes its partitions back at once,
            # instead of waiting out the killed one's session (8 s in the chaos run).
            group_instance_id=settings.triggers_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=500,
            fetch_max_wait_ms=100,
        )
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("TriggerMatcher.start() called twice")
        self.consumer.subscribe([self.topic])
        await self.consumer.start()
        self._task = asyncio.create_task(self._run(), name="switchyard-triggers")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self.consumer.stop()

    async def _run(self) -> None:
        delay = 0.1
        while not self._stopping.is_set():
            fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
            try:
                fetched = await self.consumer.getmany(timeout_ms=200)
                if fetched:
                    # Shielded: stop() waits for the batch rather than cancelling it.
                    await asyncio.shield(self._handle(fetched))
                delay = 0.1
            except (KafkaError, OSError, ConnectionError, RedisError) as error:
                # Kafka or Redis away (redis-py's errors are no OSError: they ended the
                # process on a Redis restart). Nothing was committed, but the consumer's
                # position is past the batch: read it again from its first offsets, or
                # the next batch's commit would skip it (its events lost).
                self._rewind(fetched)
                log.warning("trigger batch failed (%r); retrying in %.1f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _rewind(self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, batch in fetched.items():
            # A partition no longer assigned is read again by its new owner.
            with contextlib.suppress(KafkaError):
                self.consumer.seek(tp, batch[0].offset)

    async def _handle(
        self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        records = [r for batch in fetched.values() for r in batch]
        await self.handle(records)
        offsets = {tp: batch[-1].offset + 1 for tp, batch in fetched.items()}
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as error:
            # Partitions moved: the batch is redelivered, and derived run ids make it harmless.
            log.warning("trigger commit failed (%r); the batch will be redelivered", error)

    async def handle(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[RunTriggered]:
        """Match a batch of entity-event records; returns the triggers produced (sent
        and acknowledged by Kafka when this returns)."""
        batch = _Matched(await workflows_with_event_triggers(self.workflows))
        traced = tracing.enabled()  # the one tracing check of a batch
        for record in records:
            with log_context(topic=record.topic, partition=record.partition,
                             offset=record.offset, event_type="EntityEvent"):  # fmt: skip
                if not traced:
                    self._match(record, batch, None)
                    continue
                attributes = tracing.record_attributes(record.topic, record.partition,
                                                       record.offset)  # fmt: skip
                with tracing.record_span("triggers.match", record.headers or (),
                                         attributes) as span:  # fmt: skip
                    # The runs it starts continue the trace of the write that caused it.
                    self._match(record, batch, tuple(tracing.headers_of(span)) or None)
        triggers = [trigger for trigger, _ in batch.triggers]
        futures = [
            await self.producer.send(
                self.registry.inbox.name, trigger.run_id, encode(trigger), headers=headers
            )
            for trigger, headers in batch.triggers
        ]
        futures += [
            await self.producer.send(self.registry.dead_letter.name, key, value)
            for key, value in batch.letters
        ]
        await self.producer.flush_sent(futures)
        for trigger in triggers:
            log.info(
                "entity event started %s of %s (depth %d)",
                trigger.run_id, trigger.workflow_identifier, trigger.depth,
            )  # fmt: skip
        self.counts.started += len(triggers)
        self.counts.dead_lettered += len(batch.letters)
        for outcome in batch.outcomes:
            metrics.entity_event_matched(outcome)
        metrics.trigger_runs_started(triggers)
        for _ in batch.letters:
            metrics.dead_lettered("undecodable")
        return triggers

    def _match(
        self, record: ConsumerRecord[bytes, bytes], batch: _Matched, headers: Headers | None
    ) -> None:
        """Match one entity-event record into ``batch``: the runs it starts (to be sent
        with ``headers``), its dead letter, its outcome."""
        self.counts.events += 1
        try:
            event = EntityEvent.model_validate_json(record.value or b"")
        except ValidationError as error:
            batch.letters.append(self._dead_letter(record, str(error)))
            batch.outcomes.append("undecodable")
            return
        self.counts.handled.append(event.id)
        started, refused = runs_for(
            event, batch.workflows, evaluate=self._evaluate,
            created_by=self.settings.automation_actor,
            max_depth=self.settings.trigger_max_depth, now=self.clock(),
        )  # fmt: skip
        for refusal in refused:
            message = (
                f"entity event {event.id} ({event.action} {event.key()}) does not start "
                f"{refusal.workflow_identifier}/{refusal.node_identifier}: {refusal.reason}"
            )
            log.info("%s", message)
            self.counts.refused += 1
            self.counts.refusals.append(message)
        batch.triggers += [(trigger, headers) for trigger in started]
        batch.outcomes.append("matched" if started else "refused" if refused else "none")

    def _evaluate(self, expression: str, context: Any) -> Any:
        return self.templates.evaluate(expression, context)

    def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str) -> tuple[str, bytes]:
        letter = DeadLetter.of(
            code="undecodable", reason=f"not an entity event: {reason}", topic=record.topic,
            partition=record.partition, offset=record.offset, key=record.key,
            value=record.value or b"", at=self.clock(),
        )  # fmt: skip
        log.warning("dead letter: entity-events %s/%s is not an entity event",
                    record.partition, record.offset)  # fmt: skip
        key = record.key.decode("utf-8", errors="replace") if record.key else "none"
        return key, letter.encode()
