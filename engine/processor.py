"""The inbox processor: decode, decide, apply atomically, publish, for a batch of events.

Driver-independent: the drivers (``inbox_kafka.py``, ``inbox.py``) hand it batches of
records and commit their offsets only after :meth:`InboxProcessor.handle` returns.
Effectively once: the stored run records the inbox partition and offset it last
applied, so a redelivered event is a no-op; a step's Kafka messages wait in an
outbox written in the same atomic step and are re-published after a crash
(deterministic ids let readers de-duplicate). A run's events are applied only from
its own partition (the murmur2 partition of its id): a record anywhere else is
moved there, never applied where it landed, so offsets are only compared within
one partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import TypeVar

import msgspec
import orjson
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from opentelemetry.trace import Span, use_span
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchyard.engine import metrics as engine_metrics
from switchyard.engine.machine.decide import decide
from switchyard.engine.machine.options import MachineOptions
from switchyard.engine.machine.state import RunState
from switchyard.engine.store.plan import (
    ApplyPlan,
    OutboxMessage,
    letter_plan,
    move_plan,
    plan_decision,
)
from switchyard.engine.store.runs import RunStore, StoredRun
from switchyard.engine.store.slots import partition_tag
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
from switchyard.topics.partitioning import partition_of
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from switchyard.topics.telemetry import tracing
from switchyard.topics.telemetry.log_context import log_context

log = logging.getLogger("switchyard.engine")
T = TypeVar("T")

# Rejections that at-least-once delivery produces on its own (a trigger or a final
# report delivered twice): recorded and logged, not dead-lettered, so the dead-letter
# topic holds only what needs a person's attention.
# A report for a node run the engine timed out, and a timer fired twice or after what
# it was for ended, are benign the same way; so are an approval's answer delivered
# twice and one that lost the race to an answer that completed the node.
BENIGN_REJECTIONS = frozenset({"duplicate_trigger", "duplicate_update", "late_update",
                               "stale_timer", "duplicate_response", "input_closed"})  # fmt: skip


@dataclass(frozen=True)
class InboxRecord:
    """One Kafka record of the inbox, as any driver sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    # Kafka record headers (a trace context among them), passed on untouched.
    headers: Sequence[tuple[str, bytes]] = ()


class Outcome(StrEnum):
    """What became of one inbox record. Nothing accepted is dropped in silence: a
    record not applied is a proven redelivery, a benign duplicate (logged), a stray
    moved to its run's partition, or a dead letter with its reason."""

    APPLIED = "applied"
    # Its partition's offset was already applied (the same record, redelivered).
    REDELIVERED = "redelivered"
    # A trigger or final report delivered twice: logged, the offset recorded.
    DUPLICATE = "duplicate"
    # It sat outside its run's partition (or under another key): re-published there.
    MOVED = "moved"
    DEAD_LETTERED = "dead_lettered"


@dataclass
class _Batch:
    """What one batch has decided so far: plans to apply, messages to send after."""

    runs: dict[str, StoredRun]
    plans: list[ApplyPlan]
    direct: list[OutboxMessage]  # no run to hold them: dead letters of unknown runs
    recovered: list[tuple[str, str, str, list[OutboxMessage]]]  # (tag, run, step, messages)
    latest: dict[str, int] = field(default_factory=dict)  # workflow → latest version
    options: MachineOptions = field(default_factory=MachineOptions)
    outcomes: list[Outcome | None] = field(default_factory=list)  # one per record
    # One per plan: its record's index, and the outcome once the plan is applied.
    owners: list[tuple[int, Outcome]] = field(default_factory=list)
    letters: dict[int, str] = field(default_factory=dict)  # record index → its letter's code

    def plan(self, index: int, plan: ApplyPlan, outcome: Outcome) -> None:
        self.plans.append(plan)
        self.owners.append((index, outcome))


@dataclass
class Prepared:
    """A batch decided and applied, its messages not yet published (see ``prepare``)."""

    records: Sequence[InboxRecord]
    messages: list[OutboxMessage]
    sources: list[int | None]  # per message: the index of the record it is for
    cleared: list[tuple[str, str, str]]  # its outbox steps, as (partition tag, run id, step)
    outcomes: list[Outcome | None]
    letters: dict[int, str]
    timings: tuple[float, float, float]  # started, applying, applied (perf_counter)


class InboxProcessor:
    """Turns inbox records into state changes and published effects.

    ``inbox_partitions`` is the inbox's partition count: a run's events are applied
    only from ``partition_of(run id, inbox_partitions)``.
    """

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
        inbox_partitions: int,
        default_node_timeout_s: float | None = None,
        ai_configured: bool = False,
        email_configured: bool = False,
        max_output_bytes: int = 262_144,
        max_message_bytes: int = 1_048_576,
        agent_secret: str | None = None,
    ) -> None:
        self.store = store
        self.workflows = workflows
        self.producer = producer
        self.registry = registry
        self.templates = templates
        self.secrets = dict(secrets)
        self.clock = clock
        self.inbox_partitions = inbox_partitions  # the store's too: its keys are tagged by it
        self.options = MachineOptions(
            default_timeout_s=default_node_timeout_s, ai_configured=ai_configured,
            email_configured=email_configured,
        )  # fmt: skip
        self.max_output_bytes = max_output_bytes
        # Signs messages for Port's execution agent (SWITCHYARD_AGENT_CLIENT_SECRET).
        self.agent_secret = agent_secret
        # A dead letter keeps at most this much of the rejected value, so that the
        # letter of an event near the broker's limit still fits in one message.
        self.max_letter_value_bytes = max(1024, max_message_bytes // 4)
        self.outcomes: Counter[Outcome] = Counter()
        # Outbox steps of batches prepared but not yet published and forgotten.
        self._publishing: set[tuple[str, str, str]] = set()

    @property
    def inbox_partitions(self) -> int:
        return self.store.partitions

    @inbox_partitions.setter
    def inbox_partitions(self, count: int) -> None:
        self.store.partitions = count

    def tag(self, partition: int) -> str:
        """The hash tag of the keys a step applied from inbox ``partition`` writes."""
        return partition_tag(partition, self.inbox_partitions)

    def home(self, run_id: str) -> int:
        """The inbox partition every event of ``run_id`` is applied from."""
        return partition_of(run_id, self.inbox_partitions)

    async def recover(self, partitions: Iterable[int] | None = None) -> int:
        """Publish every outbox a crash left behind (of ``partitions``' runs, default
        all), but the steps this engine is publishing itself; returns how many steps."""
        tags = None if partitions is None else [self.tag(p) for p in partitions]
        pending = await self.store.pending_outboxes(tags)
        steps = [
            (tag, run, step, msgs)
            for (tag, run), by_step in pending.items()
            for step, msgs in by_step.items()
            if (tag, run, step) not in self._publishing
        ]
        if steps:
            # A topic that is gone (deleted, or of another deployment sharing this Redis
            # database under another prefix) would hold the start-up for the client's
            # 40 s metadata wait per message, then fail it: such steps are left in place.
            existing = await self.producer.existing_topics()
            for _, run, step, msgs in [s for s in steps if {m.topic for m in s[3]} - existing]:
                missing = sorted({m.topic for m in msgs} - existing)
                log.warning("outbox step %s of %s left in Redis: topics %s do not exist",
                            step, run, missing)  # fmt: skip
            steps = [s for s in steps if not {m.topic for m in s[3]} - existing]
        await self.publish([m for _, _, _, msgs in steps for m in msgs])
        await self.store.clear_outbox((tag, run, step) for tag, run, step, _ in steps)
        return len(steps)

    async def handle(self, records: Sequence[InboxRecord]) -> list[Outcome]:
        """Process a batch in order; returns what became of each record. Raises only
        when Redis or Kafka fail (the caller retries the whole batch: applied events
        are skipped by their offsets)."""
        prepared = await self.prepare(records)
        try:
            return await self.finish(prepared)
        except BaseException:
            self.release(prepared)  # the retry reads its steps back from the outbox
            raise

    async def prepare(self, records: Sequence[InboxRecord]) -> Prepared:
        """A batch up to its publish: decided and applied in Redis, its messages (and
        those of outbox steps a crash left) ready for :meth:`finish`. Until then its
        steps are the batch's own: a later batch prepared meanwhile does not take them
        for a crash's leftovers. Raises only when Redis or the sandboxes fail."""
        started = time.perf_counter()
        decoded: list[tuple[int, InboxRecord, InboxEvent]] = []
        batch = _Batch(runs={}, plans=[], direct=[], recovered=[])
        batch.outcomes = [None] * len(records)
        for index, record in enumerate(records):
            event = self._route(index, record, batch)
            if event is not None:
                decoded.append((index, record, event))
        # Triggers without a version start the latest one; how the agent takes agent:
        # true webhooks may change at any time. Both ride the batch's one read.
        unpinned = [
            e.workflow_identifier
            for _, _, e in decoded
            if isinstance(e, RunTriggered) and e.workflow_version is None
        ]
        loaded = await self.store.load_batch(
            (event.run_id for _, _, event in decoded),
            latest=unpinned, org=bool(decoded),
        )  # fmt: skip
        batch.runs, batch.latest = loaded.runs, loaded.latest
        if loaded.streamer is not None:
            batch.options = replace(self.options, agent_streamer=loaded.streamer)
        for run_id, stored in batch.runs.items():
            tag = self.store.tag_of(run_id)
            batch.recovered += [
                (tag, run_id, step, msgs)
                for step, msgs in stored.outbox.items()
                if (tag, run_id, step) not in self._publishing
            ]
        traced = tracing.enabled()  # the one tracing check of a batch
        for index, record, event in decoded:
            await self._decide_in_context(index, record, event, batch, traced)
        applying = time.perf_counter()
        applied = await self.store.apply(batch.plans)
        applied_at = time.perf_counter()
        # Counted before the publish: a plan once applied is never applied again.
        engine_metrics.transitions_applied(batch.plans, applied)
        messages = [m for _, _, _, msgs in batch.recovered for m in msgs] + batch.direct
        # The record each message is for (None: a crash's leftover or a dead letter).
        sources: list[int | None] = [None] * len(messages)
        cleared = [(tag, run, step) for tag, run, step, _ in batch.recovered]
        for plan, (index, outcome), reply in zip(batch.plans, batch.owners, applied, strict=True):
            if reply == 1:
                messages += plan.outbox
                sources += [index] * len(plan.outbox)
                cleared += [(plan.tag, plan.run_id, plan.step)] if plan.outbox else []
                batch.outcomes[index] = outcome
            elif reply == 0:
                batch.outcomes[index] = Outcome.REDELIVERED
            else:  # another engine applied this run from another partition meanwhile
                record = records[index]
                reason = f"{plan.guard or plan.run_id} was applied from another partition"
                messages.append(self.dead_letter(record, "partition_mismatch", reason))
                sources.append(None)
                batch.outcomes[index] = Outcome.DEAD_LETTERED
                batch.letters[index] = "partition_mismatch"
        self._publishing.update(cleared)
        return Prepared(
            records=records, messages=messages, sources=sources, cleared=cleared,
            outcomes=batch.outcomes, letters=batch.letters,
            timings=(started, applying, applied_at),
        )  # fmt: skip

    async def finish(self, prepared: Prepared) -> list[Outcome]:
        """Publish what :meth:`prepare` left ready and forget its outbox steps; raises
        when Kafka or Redis fail (call it again with the same ``prepared``)."""
        await self.publish(prepared.messages)
        published_at = time.perf_counter()
        # Forgotten before the driver commits the batch: a crash after the commit
        # must find nothing to re-publish (receivers would see it twice).
        await self.store.clear_outbox(prepared.cleared)
        self.release(prepared)
        return self._outcomes(prepared, published_at)

    async def finish_one_by_one(self, prepared: Prepared, error: BaseException) -> list[Outcome]:
        """:meth:`finish` after a publish failed for a fault of some message (one too
        large for the broker): each message alone, and the record of one that still
        fails gets a dead letter with the error. Its step stays in the outbox, where a
        later batch of its run finds it, as after a crash."""
        log.error("inbox batch publish failed (%r); publishing its messages one by one", error)
        failed: set[int] = set()
        for message, source in zip(prepared.messages, prepared.sources, strict=True):
            try:
                await retry(partial(self.publish, [message]), what="inbox message",
                            only_infrastructure=True)  # fmt: skip
            except Exception as fault:
                log.exception("message to %s for %s failed", message.topic, message.key)
                if source is not None and source not in failed:
                    failed.add(source)
                    letter = self.dead_letter(prepared.records[source], "engine_error", repr(fault))
                    await retry(partial(self.publish, [letter]), what="dead letter")
                    prepared.outcomes[source] = Outcome.DEAD_LETTERED
                    prepared.letters[source] = "engine_error"
        published_at = time.perf_counter()
        keep = {message.key for message, source in zip(prepared.messages, prepared.sources,
                strict=True) if source in failed}  # fmt: skip
        done = [(tag, run, step) for tag, run, step in prepared.cleared if run not in keep]
        await retry(partial(self.store.clear_outbox, done), what="outbox clear")
        self.release(prepared)
        return self._outcomes(prepared, published_at)

    def release(self, prepared: Prepared) -> None:
        """The batch's outbox steps are no longer its own (published, or given back)."""
        self._publishing.difference_update(prepared.cleared)

    def _outcomes(self, prepared: Prepared, published_at: float) -> list[Outcome]:
        outcomes = [outcome or Outcome.DEAD_LETTERED for outcome in prepared.outcomes]
        self.outcomes.update(outcomes)
        engine_metrics.batch_handled(outcomes, prepared.letters, *prepared.timings, published_at)
        return outcomes

    def _route(self, index: int, record: InboxRecord, batch: _Batch) -> InboxEvent | None:
        """The event of ``record`` when it is to be applied here, else None (its
        outcome is then set: a dead letter, or a move to the run's partition)."""
        try:
            event = decode_inbox(record.value or b"")
        except DecodeError as error:
            letter = self.dead_letter(record, "undecodable", error.reason)
            batch.letters[index] = "undecodable"  # counted if it is sent: not for a redelivery
            # Planned in record order, as moves are: both are guarded by the partition's
            # own offset, which a plan of a lower offset after a higher one can't pass.
            plan = letter_plan(record.topic, record.partition, record.offset, letter,
                               self.tag(record.partition))  # fmt: skip
            batch.plan(index, plan, Outcome.DEAD_LETTERED)
            return None
        home = self.home(event.run_id)
        if record.key == event.run_id.encode() and record.partition == home:
            return event
        # Keyed by anything but its run id, or placed by a partitioner other than
        # murmur2 (librdkafka's default): applying it here would compare offsets of
        # two partitions. Re-publish it to the run's partition, explicitly, once.
        # A librdkafka producer strays on most events: warn once, then log quietly.
        level = logging.DEBUG if self.outcomes[Outcome.MOVED] else logging.WARNING
        log.log(
            level,
            "moving inbox record %s/%s (key %r) of %s to partition %s; a producer sets the "
            "murmur2 partition of the run id to save this hop (docs/kafka.md)",
            record.partition, record.offset, record.key, event.run_id, home,
        )  # fmt: skip
        inbox = self.registry.inbox.name
        # Its headers go with it: the trace it carries continues from its new place.
        headers = tuple(record.headers) or None
        message = OutboxMessage(inbox, event.run_id, record.value or b"", home, headers)
        move = move_plan(
            event.run_id, record.topic, record.partition, record.offset, message,
            self.tag(record.partition),
        )  # fmt: skip
        batch.plan(index, move, Outcome.MOVED)
        return None

    async def _decide_in_context(
        self,
        index: int,
        record: InboxRecord,
        event: InboxEvent,
        batch: _Batch,
        traced: bool,
    ) -> None:
        """:meth:`_decide` with the record in the log context and, when traced, in a
        transition span whose trace context the step's outbox messages carry.

        The span covers the decision and ends with it, so it is exported even when
        the batch's Redis step or publish fails after (the retry makes spans of its
        own; a re-published outbox points at this one)."""
        with log_context(
            run_id=event.run_id, node_run_id=getattr(event, "node_run_id", None),
            event_type=event.type, topic=record.topic, partition=record.partition,
            offset=record.offset,
        ):  # fmt: skip
            if not traced:
                await self._decide(index, record, event, batch)
                return
            before = batch.runs.get(event.run_id)
            plans, direct = len(batch.plans), len(batch.direct)
            kept = before.state.trace if before is not None else None
            parent, linked = tracing.run_parent(record.headers, kept)
            stand_in = tracing.unsampled_span(parent)
            span: Span | None = None
            if stand_in is None:
                attributes = {
                    **tracing.record_attributes(record.topic, record.partition, record.offset),
                    "switchyard.run_id": event.run_id, "switchyard.event_type": event.type,
                }  # fmt: skip
                node_run_id = getattr(event, "node_run_id", None)
                if node_run_id is not None:
                    attributes["switchyard.node_run_id"] = node_run_id
                name = f"engine.transition {event.type}"
                span = tracing.start_record_span(name, parent, attributes, linked)
                stand_in = tracing.stand_in(span)  # a root the sampler dropped
            if stand_in is not None:
                # Not sampled (most records at a low ratio): no span made current, no
                # span attributes, only the trace headers handed on (README: Traces).
                trace = tracing.traceparent_of(stand_in) if kept is None else None
                headers = tuple(stand_in.carried) or None
                await self._decide(index, record, event, batch, trace, headers)
                _carry_headers(headers, batch, plans, direct)
                return
            assert span is not None
            with use_span(span, end_on_exit=True, record_exception=True):
                # A run that keeps no trace yet keeps this one (the trigger's, mostly).
                trace = tracing.traceparent_of(span) if kept is None else None
                headers = tuple(tracing.headers_of(span)) or None
                await self._decide(index, record, event, batch, trace, headers)
                _carry_headers(headers, batch, plans, direct)
                _mark_completion(span, before, batch.runs.get(event.run_id))
                # What the decision made of the record (a plan's outcome holds once
                # the Redis step applies it).
                outcome = batch.outcomes[index] or (
                    batch.owners[-1][1] if len(batch.plans) > plans else None
                )
                if outcome is not None:
                    span.set_attribute("switchyard.outcome", outcome.value)

    async def _decide(
        self,
        index: int,
        record: InboxRecord,
        event: InboxEvent,
        batch: _Batch,
        trace: str | None = None,
        headers: tuple[tuple[str, bytes], ...] | None = None,
    ) -> None:
        """Decide ``event`` against its run and plan the outcome; ``trace`` is the
        ``traceparent`` a run keeping none is to keep from now on, ``headers`` the trace
        context its plan's messages carry."""
        stored = batch.runs.get(event.run_id)
        if stored is not None and stored.partition not in {None, record.partition}:
            reason = (
                f"run {event.run_id} was applied from inbox partition {stored.partition}, "
                f"this event came from {record.partition}: offsets of two partitions can't "
                "be compared (was the inbox's partition count changed?)"
            )
            batch.direct.append(self.dead_letter(record, "partition_mismatch", reason))
            batch.outcomes[index] = Outcome.DEAD_LETTERED
            batch.letters[index] = "partition_mismatch"
            return
        if stored is not None and stored.offset >= record.offset:
            batch.outcomes[index] = Outcome.REDELIVERED  # proven: same partition, applied
            return
        if stored is None and not isinstance(event, RunTriggered):
            reason = f"run {event.run_id} does not exist (a {event.type} needs a started run)"
            self._reject(index, record, event, stored, batch, "unknown_run", reason)
            return
        too_large = self._oversized_output(event)
        if too_large is not None:
            self._reject(index, record, event, stored, batch, "output_too_large", too_large)
            return
        workflow = await self._workflow(event, stored, batch.latest)
        if workflow is None:
            reason = f"workflow of {event.run_id} not found"
            self._reject(index, record, event, stored, batch, "unknown_workflow", reason)
            return
        state = stored.state if stored else None
        try:
            decision = decide(
                state, event, workflow=workflow, now=self.clock(),
                templates=self.templates, secrets=self.secrets,
                options=batch.options,
            )  # fmt: skip
        except TemplatesUnavailable:
            raise  # the template sandbox is restarting or stopping: retry the batch
        except Exception as error:  # a bug must not stop the engine: keep the event
            log.exception("decide failed for %s", event.run_id)
            self._reject(index, record, event, stored, batch, "engine_error", repr(error))
            return
        if trace is not None and decision.state is not None and decision.state.trace is None:
            decision = replace(decision, state=msgspec.structs.replace(decision.state, trace=trace))
        if decision.rejection is not None:
            rejection = decision.rejection
            if rejection.code in BENIGN_REJECTIONS and stored is not None:
                log.info("ignored %s: %s", rejection.code, rejection.reason)
                step = f"{stored.state.step}:{record.offset}"
                plan = ApplyPlan(
                    event.run_id, record.offset, step, partition=record.partition,
                    tag=self.tag(record.partition),
                )  # fmt: skip
                batch.plan(index, plan, Outcome.DUPLICATE)
                batch.runs[event.run_id] = _stored(stored.state, record)
                return
            self._reject(index, record, event, stored, batch, rejection.code, rejection.reason)
            return
        plan = plan_decision(
            state, decision, offset=record.offset, registry=self.registry,
            partition=record.partition, tag=self.tag(record.partition),
            agent_secret=self.agent_secret, workflow=workflow, headers=headers,
        )  # fmt: skip
        batch.plan(index, plan, Outcome.APPLIED)
        if decision.state is not None:
            batch.runs[event.run_id] = _stored(decision.state, record)

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

    def _reject(
        self,
        index: int,
        record: InboxRecord,
        event: InboxEvent,
        stored: StoredRun | None,
        batch: _Batch,
        code: str,
        reason: str,
    ) -> None:
        letter = self.dead_letter(record, code, reason)
        batch.letters[index] = code  # counted if it is sent: not for a redelivery
        if stored is None:
            batch.direct.append(letter)
            batch.outcomes[index] = Outcome.DEAD_LETTERED
            return
        # A rejection changes nothing but the offset; its dead letter rides the outbox.
        step = f"{stored.state.step}:{record.offset}"
        plan = ApplyPlan(
            event.run_id, record.offset, step, partition=record.partition, outbox=[letter],
            tag=self.tag(record.partition),
        )  # fmt: skip
        batch.plan(index, plan, Outcome.DEAD_LETTERED)
        batch.runs[event.run_id] = _stored(stored.state, record)

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
        futures = await self.producer.send_many(
            (m.topic, m.key, m.value, m.partition, m.headers) for m in messages
        )
        await self.producer.flush_sent(futures)


def _carry_headers(
    headers: tuple[tuple[str, bytes], ...] | None, batch: _Batch, plans: int, direct: int
) -> None:
    """Trace ``headers`` on the messages of the plans and letters the batch gained
    since it had ``plans`` plans and ``direct`` letters (a decision's plan made its
    own with them: only rejections, duplicates and letters are left)."""

    def carrying(m: OutboxMessage) -> OutboxMessage:  # twice as fast as dataclasses.replace
        return OutboxMessage(m.topic, m.key, m.value, m.partition, headers)

    for plan in batch.plans[plans:]:
        if plan.headers is not headers or headers is None:
            plan.outbox = [carrying(m) for m in plan.outbox]
    batch.direct[direct:] = [carrying(m) for m in batch.direct[direct:]]


def _mark_completion(span: Span, before: StoredRun | None, after: StoredRun | None) -> None:
    """The run's result on the span of the transition that finished it."""
    if after is None or after.state.result is None:
        return
    if before is not None and before.state.result is not None:
        return
    span.set_attribute("switchyard.run_result", str(after.state.result))
    span.add_event("run.completed", {"switchyard.run_result": str(after.state.result)})


def _stored(state: RunState, record: InboxRecord) -> StoredRun:
    """The run as the batch left it: later events of the batch compare against this."""
    return StoredRun(state=state, offset=record.offset, partition=record.partition)


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
    action: Callable[[], Awaitable[T]],
    *,
    what: str,
    only_infrastructure: bool = False,
    max_delay: float = 5.0,
) -> T:
    """Run ``action``, retrying with capped exponential backoff.

    With ``only_infrastructure``, only Redis, Kafka or sandbox outages are retried and
    any other error is raised; otherwise every error is retried. Either way nothing
    is dropped while a service is away: the batch stays un-committed until it passes.
    """
    delay = 0.1
    while True:
        try:
            return await action()
        except Exception as error:
            if only_infrastructure and not is_infrastructure(error):
                raise
            log.warning("%s failed (%r); retrying in %.1f s", what, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


async def handle_batch(processor: InboxProcessor, records: Sequence[InboxRecord]) -> list[Outcome]:
    """What a driver calls: never raises, never stalls on one bad event.

    Redis or Kafka failures are retried until they pass. Any other failure is a
    fault of some event (an engine bug it triggers): the batch is split and handled
    one record at a time, and a record that still fails goes to the dead-letter topic
    with the error, so the partition moves on.
    """
    try:
        return await retry(
            partial(processor.handle, records), what="inbox batch", only_infrastructure=True
        )
    except Exception as error:
        log.exception("inbox batch failed (%r); handling its records one by one", error)
    outcomes: list[Outcome] = []
    for record in records:
        try:
            outcomes += await retry(partial(processor.handle, [record]), what="inbox record",
                                    only_infrastructure=True)  # fmt: skip
        except Exception as error:
            log.exception("record %s/%s failed", record.partition, record.offset)
            letter = processor.dead_letter(record, "engine_error", repr(error))
            await retry(partial(processor.publish, [letter]), what="dead letter")
            processor.outcomes[Outcome.DEAD_LETTERED] += 1
            engine_metrics.dead_lettered("engine_error", Outcome.DEAD_LETTERED)
            outcomes.append(Outcome.DEAD_LETTERED)
    return outcomes


async def prepare_batch(
    processor: InboxProcessor, records: Sequence[InboxRecord]
) -> Prepared | None:
    """:meth:`InboxProcessor.prepare` retried while Redis or the sandboxes are away;
    None when it fails for a fault of some event (the caller then takes
    :func:`handle_batch`'s one-record-at-a-time path)."""
    try:
        return await retry(
            partial(processor.prepare, records), what="inbox batch", only_infrastructure=True
        )
    except Exception as error:
        log.exception("inbox batch failed (%r); handling its records one by one", error)
        return None


async def finish_batch(processor: InboxProcessor, prepared: Prepared) -> list[Outcome]:
    """:meth:`InboxProcessor.finish` retried while Kafka or Redis are away; never raises."""
    try:
        return await retry(
            partial(processor.finish, prepared), what="inbox publish", only_infrastructure=True
        )
    except Exception as error:
        return await processor.finish_one_by_one(prepared, error)
