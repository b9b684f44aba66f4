"""The scheduler: each tick of a published SCHEDULE_TRIGGER becomes one run.

Every ``scheduler_poll_s`` it reads the latest version of every live workflow (parsed
once per version), and for each published schedule trigger asks ``due_tick`` which
tick to fire given the last one fired (``sy:schedule:{<workflow>}:<node>``) and when
that version was saved. Firing produces a ``RunTriggered`` to the inbox whose run id
is derived from the workflow, the node and the tick, waits for Kafka's ack, and only
then records the tick with a compare-and-set (``advance_schedule.lua``).

Exactly one run per tick, across restarts and several schedulers: a crash between
the produce and the record fires the tick again after a restart, and two schedulers
may both fire it; every copy carries the same run id, and the engine creates a run
once (the others are benign ``duplicate_trigger`` rejections). Recording after the
ack (never before) is what makes a crash unable to lose a tick.

Missed ticks (downtime, a scheduler late) are not caught up: only the latest is
fired and the others are logged at WARNING with their count, first and last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import redis.asyncio as aioredis
from pydantic import ValidationError

from switchyard.engine import metrics
from switchyard.engine.schedule_ticks import DueTick, due_tick, next_tick
from switchyard.engine.store import keys
from switchyard.engine.store.calls import side_by_side
from switchyard.engine.store.workflows import LiveVersion, WorkflowStore
from switchyard.schemas import RunTriggered, ScheduleTriggerConfig, encode, format_timestamp
from switchyard.schemas.ids import derived_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from switchyard.topics.telemetry.log_context import log_context

log = logging.getLogger("switchyard.scheduler")

_FIRST_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 5.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def schedule_run_id(workflow: str, node: str, tick: datetime) -> str:
    """The run of ``tick`` of schedule ``node`` of ``workflow``: whoever fires it
    derives the same id."""
    return derived_run_id("schedule", workflow, node, format_timestamp(tick))


@dataclass(frozen=True)
class Schedule:
    """A published schedule trigger of a workflow's latest version."""

    workflow: str
    version: int
    node: str
    cron: str
    defined_at: datetime  # when this version was saved: no tick before it fires


@dataclass(frozen=True)
class Firing:
    schedule: Schedule
    read: str  # the record's tick as read before firing ('' when none): the CAS token
    due: DueTick


@dataclass
class SchedulerCounts:
    """What this scheduler has done since it started (for logs and tests)."""

    passes: int = 0  # completed looks at every schedule
    fired: int = 0  # RunTriggered produced and acknowledged
    recorded: int = 0  # of those, ticks this scheduler recorded (won the compare-and-set)
    skipped: int = 0  # missed ticks not fired
    failures: int = 0


class SchedulerService:
    """Fires due schedule ticks until stopped; shares the caller's Redis and producer.

    Lifecycle: ``start()`` once (a second start is an error), ``stop()`` is idempotent:
    it lets the pass in hand finish (produce, then record) and returns.
    """

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        producer: EventProducer,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.inbox = TopicRegistry.from_settings(settings).inbox.name
        self.counts = SchedulerCounts()
        self._redis = redis
        self._producer = producer
        self._clock = clock
        self._actor = settings.automation_actor
        self._poll = settings.scheduler_poll_s
        self._workflows = WorkflowStore(redis)
        lua = resources.files("switchyard.engine.store").joinpath("lua", "advance_schedule.lua")
        self._advance = redis.register_script(lua.read_text())
        # The published schedule triggers of each (workflow, version) seen: versions
        # never change, so each is parsed once; pruned to the live versions every pass.
        self._versions: dict[tuple[str, int], tuple[tuple[str, str], ...]] = {}
        # The first tick that may fire of each (workflow, node, version, tick recorded):
        # before it a schedule costs a lookup, not a cron evaluation (~0.5 ms).
        self._next: dict[tuple[str, str, int, str], datetime] = {}
        self._wake = asyncio.Event()
        self._state = "new"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"SchedulerService.start() called when {self._state}")
        self._state = "started"
        self._task = asyncio.create_task(self._run(), name="scheduler-loop")

    async def stop(self) -> None:
        if self._state in ("new", "stopped"):
            self._state = "stopped"
            return
        self._state = "stopping"
        self._wake.set()
        assert self._task is not None
        # Cancelled itself (a grace period ran out), this cancels the pass: a tick
        # produced but not recorded is fired again, with the same run id, later.
        outcome = (await asyncio.gather(self._task, return_exceptions=True))[0]
        if isinstance(outcome, Exception):
            log.error("scheduler: %r on the way out", outcome)
        if self._state != "stopped":
            self._state = "stopped"
            counts = self.counts
            log.info("scheduler stopped: %d fired, %d recorded, %d missed ticks skipped",
                     counts.fired, counts.recorded, counts.skipped)  # fmt: skip

    async def __aenter__(self) -> SchedulerService:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def running(self) -> bool:
        """Started and not yet asked to stop."""
        return self._state == "started"

    async def _run(self) -> None:
        backoff = _FIRST_BACKOFF_S
        while self.running():
            try:
                await self.fire_due()
                pause, backoff = self._poll, _FIRST_BACKOFF_S
            except Exception as error:
                if not self.running():
                    break  # what was fired but not recorded fires again after a restart
                self.counts.failures += 1
                log.warning("scheduler: a pass failed (%r); retrying in %.1f s", error, backoff)
                pause, backoff = backoff, min(backoff * 2, _MAX_BACKOFF_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def fire_due(self) -> int:
        """One pass: fire every due tick of every published schedule; how many fired."""
        now = self._clock()
        schedules = await self.schedules()
        firings = await self._due(schedules, now)
        if firings:
            await self._fire(firings, now)
        self.counts.passes += 1
        return len(firings)

    async def schedules(self) -> list[Schedule]:
        """The published schedule triggers of every live workflow's latest version."""
        live = await self._workflows.live_versions()
        seen = {(v.identifier, v.version) for v in live}
        for key in [k for k in self._versions if k not in seen]:
            del self._versions[key]
        found = []
        for version in live:
            nodes = await self._triggers(version)
            found += [
                Schedule(version.identifier, version.version, node, cron, version.saved_at)
                for node, cron in nodes
            ]
        return found

    async def _triggers(self, live: LiveVersion) -> tuple[tuple[str, str], ...]:
        """``(node, cron)`` of each published schedule trigger of that version."""
        key = (live.identifier, live.version)
        known = self._versions.get(key)
        if known is not None:
            return known
        try:
            workflow = await self._workflows.get(live.identifier, live.version)
        except (ValueError, ValidationError) as error:
            # Saved by an older release and no longer valid: nothing of it can fire.
            log.error("scheduler: %s v%d can't be read (%s); it fires nothing",
                      live.identifier, live.version, error)  # fmt: skip
            workflow = None
        nodes = tuple(
            (node.identifier, node.config.cron)
            for node in (workflow.nodes if workflow is not None else [])
            if isinstance(node.config, ScheduleTriggerConfig) and node.config.published
        )
        self._versions[key] = nodes
        return nodes

    async def _due(self, schedules: Sequence[Schedule], now: datetime) -> list[Firing]:
        if not schedules:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for schedule in schedules:
                pipe.hget(keys.schedule(schedule.workflow, schedule.node), "tick")
            recorded = await pipe.execute()
        firings = []
        waiting: dict[tuple[str, str, int, str], datetime] = {}
        for schedule, raw in zip(schedules, recorded, strict=True):
            read = _text(raw) if raw is not None else ""
            last = datetime.fromisoformat(read) if read else None
            key = (schedule.workflow, schedule.node, schedule.version, read)
            first = self._next.get(key)
            if first is None:
                first = next_tick(schedule.cron, last_fired=last, defined_at=schedule.defined_at)
            waiting[key] = first
            if now < first:
                continue
            due = due_tick(schedule.cron, last_fired=last, defined_at=schedule.defined_at, now=now)
            if due is not None:
                firings.append(Firing(schedule, read, due))
        self._next = waiting
        return firings

    async def _fire(self, firings: Sequence[Firing], now: datetime) -> None:
        """Produce every firing, wait for Kafka's acks, then record each tick."""
        futures = []
        for firing in firings:
            schedule = firing.schedule
            with log_context(workflow=schedule.workflow, node=schedule.node,
                             event_type="RunTriggered", topic=self.inbox):  # fmt: skip
                event = self._event(firing, now)
            futures.append(await self._producer.send(self.inbox, event.run_id, encode(event)))
        await self._producer.flush_sent(futures)
        self.counts.fired += len(firings)
        for firing in firings:
            metrics.tick_fired(firing.schedule.workflow, firing.due.tick, now)
        # Calls side by side rather than a pipeline: each record is its own slot, and a
        # Redis Cluster pipeline does not load a script its node has not cached.
        recorded = await side_by_side(
            self._advance(
                keys=[keys.schedule(firing.schedule.workflow, firing.schedule.node)],
                args=[firing.read, format_timestamp(firing.due.tick),
                      firing.schedule.version, firing.schedule.cron],
            )
            for firing in firings
        )  # fmt: skip
        self.counts.recorded += sum(int(r) for r in recorded)

    def _event(self, firing: Firing, now: datetime) -> RunTriggered:
        schedule, due = firing.schedule, firing.due
        tick = format_timestamp(due.tick)
        run_id = schedule_run_id(schedule.workflow, schedule.node, due.tick)
        context = {"run_id": run_id, "workflow": schedule.workflow, "node": schedule.node,
                   "tick": tick, "event_type": "RunTriggered", "topic": self.inbox}  # fmt: skip
        if due.skipped:
            self.counts.skipped += due.skipped
            log.warning(
                "schedule %s/%s missed %s%d tick(s) from %s to %s; firing only %s",
                schedule.workflow, schedule.node, "at least " if due.skipped_more else "",
                due.skipped, _stamp(due.first_skipped), _stamp(due.last_skipped), tick,
                extra=context,
            )  # fmt: skip
        log.info("schedule %s/%s fired %s (%s) as run %s", schedule.workflow, schedule.node,
                 tick, schedule.cron, run_id, extra=context)  # fmt: skip
        return RunTriggered(
            run_id=run_id,
            workflow_identifier=schedule.workflow,
            workflow_version=schedule.version,
            node_identifier=schedule.node,
            payload={"scheduledAt": tick, "cron": schedule.cron},
            created_by=self._actor,
            triggered_at=now,
        )


def _stamp(value: datetime | None) -> str:
    return "-" if value is None else format_timestamp(value)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
