"""The inbox processor: decode, decide, apply atomically, publish, for a batch of events.

Driver-independent: the faust agent in ``inbox.py`` hands it batches of records and
commits their offsets only after :meth:`InboxProcessor.handle` returns. Effectively
once: the stored run records the inbox offset it last applied, so a redelivered
event is a no-op; a step's Kafka messages wait in an outbox written in the same
atomic step and are re-published after a crash (deterministic ids let readers
de-duplicate).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import orjson
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchyard.engine.machine.decide import decide
from switchyard.engine.machine.effects import Decision
from switchyard.engine.store.plan import ApplyPlan, OutboxMessage, plan_decision
from switchyard.engine.store.runs import RunStore, StoredRun
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.engine.templates import Templates, TemplatesUnavailable
from switchyard.schemas import (
    DecodeError,
    InboxEvent,
    NodeRunUpdated,
    RunTriggered,
    Workflow,
    decode_inbox,
)
from switchyard.topics.dead_letter import DeadLetter
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry

log = logging.getLogger("switchyard.engine")

# Rejections that at-least-once delivery produces on its own (a trigger or a final
# report delivered twice): recorded and logged, not dead-lettered, so the dead-letter
# topic holds only what needs a person's attention.
BENIGN_REJECTIONS = frozenset({"duplicate_trigger", "duplicate_update"})


@dataclass(frozen=True)
class InboxRecord:
    """One Kafka record of the inbox, as any driver sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class _Batch:
    """What one batch has decided so far: plans to apply, messages to send after."""

    runs: dict[str, StoredRun]
    plans: list[ApplyPlan]
    direct: list[OutboxMessage]  # no run to hold them: dead letters of unknown runs, re-keys
    recovered: list[tuple[str, str, list[OutboxMessage]]]
    latest: dict[str, int] = field(default_factory=dict)  # workflow → latest version


class InboxProcessor:
    """Turns inbox records into state changes and published effects."""

    def __init__(
        self,
        *,
        store: RunStore,
        workflows: WorkflowStore,
        producer: EventProducer,
        registry: TopicRegistry,
        templates: Templates,
        secrets: Mapping[str, str],
        clock: Callable[[], datetime],
        max_output_bytes: int = 262_144,
        max_message_bytes: int = 1_048_576,
    ) -> None:
        self.store = store
        self.workflows = workflows
        self.producer = producer
        self.registry = registry
        self.templates = templates
        self.secrets = dict(secrets)
        self.clock = clock
        self.max_output_bytes = max_output_bytes
        # A dead letter keeps at most this much of the rejected value, so that the
        # letter of an event near the broker's limit still fits in one message.
        self.max_letter_value_bytes = max(1024, max_message_bytes // 4)

    async def recover(self) -> int:
        """Publish every outbox a crash left behind; returns how many steps."""
        pending = await self.store.pending_outboxes()
        steps = [
            (run, step, msgs) for run, by_step in pending.items() for step, msgs in by_step.items()
        ]
        await self.publish([m for _, _, msgs in steps for m in msgs])
        await self.store.clear_outbox((run, step) for run, step, _ in steps)
        return len(steps)

    async def handle(self, records: Sequence[InboxRecord]) -> None:
        """Process a batch in order. Raises only when Redis or Kafka fail (the caller
        retries the whole batch: applied events are skipped by their offsets)."""
        decoded: list[tuple[InboxRecord, InboxEvent]] = []
        batch = _Batch(runs={}, plans=[], direct=[], recovered=[])
        for record in records:
            event = self._decode(record, batch)
            if event is not None:
                decoded.append((record, event))
        batch.runs = await self.store.load(event.run_id for _, event in decoded)
        # Triggers without a version start the latest one: one round trip per batch.
        unpinned = [
            e.workflow_identifier
            for _, e in decoded
            if isinstance(e, RunTriggered) and e.workflow_version is None
        ]
        batch.latest = await self.workflows.latest_versions(unpinned)
        for run_id, stored in batch.runs.items():
            batch.recovered += [(run_id, step, msgs) for step, msgs in stored.outbox.items()]
        for record, event in decoded:
            await self._decide(record, event, batch)
        applied = await self.store.apply(batch.plans)
        messages = [m for _, _, msgs in batch.recovered for m in msgs] + batch.direct
        for plan, ok in zip(batch.plans, applied, strict=True):
            if ok:
                messages += plan.outbox
        await self.publish(messages)
        cleared = [(run, step) for run, step, _ in batch.recovered]
        cleared += [
            (p.run_id, p.step)
            for p, ok in zip(batch.plans, applied, strict=True)
            if ok and p.outbox
        ]
        await self.store.clear_outbox(cleared)

    def _decode(self, record: InboxRecord, batch: _Batch) -> InboxEvent | None:
        try:
            event = decode_inbox(record.value or b"")
        except DecodeError as error:
            batch.direct.append(self.dead_letter(record, "undecodable", error.reason))
            return None
        if record.key != event.run_id.encode():
            # An event keyed by anything but its run id may sit in another run's
            # partition: re-publish it under the right key, never apply it here.
            batch.direct.append(OutboxMessage(record.topic, event.run_id, record.value or b""))
            log.warning("re-keyed event for %s (key was %r)", event.run_id, record.key)
            return None
        return event

    async def _decide(self, record: InboxRecord, event: InboxEvent, batch: _Batch) -> None:
        stored = batch.runs.get(event.run_id)
        if stored is not None and stored.offset >= record.offset:
            return  # redelivered: already applied
        if stored is None and not isinstance(event, RunTriggered):
            reason = f"run {event.run_id} does not exist (a {event.type} needs a started run)"
            self._reject(record, event, stored, batch, "unknown_run", reason)
            return
        too_large = self._oversized_output(event)
        if too_large is not None:
            self._reject(record, event, stored, batch, "output_too_large", too_large)
            return
        workflow = await self._workflow(event, stored, batch.latest)
        if workflow is None:
            reason = f"workflow of {event.run_id} not found"
            self._reject(record, event, stored, batch, "unknown_workflow", reason)
            return
        state = stored.state if stored else None
        try:
            decision = decide(
                state, event, workflow=workflow, now=self.clock(),
                templates=self.templates, secrets=self.secrets,
            )  # fmt: skip
        except TemplatesUnavailable:
            raise  # the template sandbox is restarting or stopping: retry the batch
        except Exception as error:  # a bug must not stop the engine: keep the event
            log.exception("decide failed for %s", event.run_id)
            self._reject(record, event, stored, batch, "engine_error", repr(error))
            return
        if decision.rejection is not None:
            rejection = decision.rejection
            if rejection.code in BENIGN_REJECTIONS and stored is not None:
                log.info("ignored %s: %s", rejection.code, rejection.reason)
                step = f"{stored.state.step}:{record.offset}"
                batch.plans.append(ApplyPlan(event.run_id, record.offset, step))
                batch.runs[event.run_id] = StoredRun(state=stored.state, offset=record.offset)
                return
            self._reject(record, event, stored, batch, rejection.code, rejection.reason)
            return
        batch.plans.append(
            plan_decision(state, decision, offset=record.offset, registry=self.registry)
        )
        self._remember(batch, event.run_id, decision, record.offset)

    def _oversized_output(self, event: InboxEvent) -> str | None:
        """Why a NodeRunUpdated's output is refused for its size, or None."""
        if not isinstance(event, NodeRunUpdated) or event.output is None:
            return None
        size = len(orjson.dumps(event.output))
        if size <= self.max_output_bytes:
            return None
        return (
            f"output of node run {event.node_run_id} is {size} bytes; at most "
            f"{self.max_output_bytes} bytes are accepted (SWITCHYARD_NODE_OUTPUT_MAX_BYTES)"
        )

    @staticmethod
    def _remember(batch: _Batch, run_id: str, decision: Decision, offset: int) -> None:
        if decision.state is not None:
            batch.runs[run_id] = StoredRun(state=decision.state, offset=offset)

    def _reject(
        self,
        record: InboxRecord,
        event: InboxEvent,
        stored: StoredRun | None,
        batch: _Batch,
        code: str,
        reason: str,
    ) -> None:
        letter = self.dead_letter(record, code, reason)
        if stored is None:
            batch.direct.append(letter)
            return
        # A rejection changes nothing but the offset; its dead letter rides the outbox.
        step = f"{stored.state.step}:{record.offset}"
        plan = ApplyPlan(event.run_id, record.offset, step, outbox=[letter])
        batch.plans.append(plan)
        batch.runs[event.run_id] = StoredRun(state=stored.state, offset=record.offset)

    async def _workflow(
        self, event: InboxEvent, stored: StoredRun | None, latest: dict[str, int]
    ) -> Workflow | None:
        if stored is not None:
            return await self.workflows.get(
                stored.state.workflow_identifier, stored.state.workflow_version
            )
        if isinstance(event, RunTriggered):
            version = event.workflow_version or latest.get(event.workflow_identifier)
            if version is None:
                return None
            return await self.workflows.get(event.workflow_identifier, version)
        return None

    def dead_letter(self, record: InboxRecord, code: str, reason: str) -> OutboxMessage:
        """The dead letter of ``record``, ready to publish."""
        value = record.value or b""
        if len(value) > self.max_letter_value_bytes:
            # The whole value would not fit in the letter (JSON escaping or base64 grow
            # it): a letter the producer refuses would stall the batch for good.
            reason += (
                f" (value cut to its first {self.max_letter_value_bytes} of {len(value)} bytes)"
            )
            value = value[: self.max_letter_value_bytes]
        letter = DeadLetter.of(
            code=code, reason=reason, topic=record.topic, partition=record.partition,
            offset=record.offset, key=record.key, value=value, at=self.clock(),
        )  # fmt: skip
        log.warning("dead letter %s at %s/%s: %s", code, record.partition, record.offset, reason)
        key = record.key.decode("utf-8", errors="replace") if record.key else "none"
        return OutboxMessage(self.registry.dead_letter.name, key, letter.encode())

    async def publish(self, messages: Sequence[OutboxMessage]) -> None:
        futures = [await self.producer.send(m.topic, m.key, m.value) for m in messages]
        await self.producer.flush_sent(futures)


def is_infrastructure(error: BaseException) -> bool:
    """Redis, Kafka or the template sandboxes away (retry until back), as opposed to a
    fault of one event. A message too large for the broker is the event's fault."""
    if isinstance(error, MessageSizeTooLargeError):
        return False
    return isinstance(
        error,
        RedisConnectionError | RedisTimeoutError | BusyLoadingError | KafkaError | OSError
        | TimeoutError | TemplatesUnavailable,
    )  # fmt: skip


async def retry(
    action: Callable[[], Awaitable[None]],
    *,
    what: str,
    only_infrastructure: bool = False,
    max_delay: float = 5.0,
) -> None:
    """Run ``action``, retrying with capped exponential backoff.

    With ``only_infrastructure``, only Redis, Kafka or sandbox outages are retried and
    any other error is raised; otherwise every error is retried. Either way nothing
    is dropped while a service is away: the batch stays un-committed until it passes.
    """
    delay = 0.1
    while True:
        try:
            await action()
            return
        except Exception as error:
            if only_infrastructure and not is_infrastructure(error):
                raise
            log.warning("%s failed (%r); retrying in %.1f s", what, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


async def handle_batch(processor: InboxProcessor, records: Sequence[InboxRecord]) -> None:
    """What a driver calls: never raises, never stalls on one bad event.

    Redis or Kafka failures are retried until they pass. Any other failure is a
    fault of some event (an engine bug it triggers): the batch is split and handled
    one record at a time, and a record that still fails goes to the dead-letter topic
    with the error, so the partition moves on.
    """
    try:
        await retry(
            partial(processor.handle, records), what="inbox batch", only_infrastructure=True
        )
        return
    except Exception as error:
        log.exception("inbox batch failed (%r); handling its records one by one", error)
    for record in records:
        try:
            await retry(partial(processor.handle, [record]), what="inbox record",
                        only_infrastructure=True)  # fmt: skip
        except Exception as error:
            log.exception("record %s/%s failed", record.partition, record.offset)
            letter = processor.dead_letter(record, "engine_error", repr(error))
            await retry(partial(processor.publish, [letter]), what="dead letter")
