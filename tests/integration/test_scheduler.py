"""The scheduler against real Kafka and Redis, with a test clock: every tick of a
published schedule becomes exactly one run, across two schedulers, a crash between
the firing and its record, a restart and a downtime (after which only the latest
missed tick fires); unpublished, deleted and superseded schedules fire nothing.

The schedulers scan every workflow of their Redis database: these tests use the
session's own database (``private_redis_db``) and remove their workflows afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from switchyard.cli.stack.full import environment
from switchyard.engine.processor import InboxRecord
from switchyard.engine.scheduler import SchedulerService, schedule_run_id
from switchyard.engine.store import keys
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.slots import partition_tag
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.schemas import (
    DecodeError,
    RunTriggered,
    decode_inbox,
    format_timestamp,
    parse_workflow,
)
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.helpers import private_redis_db, until
from tests.integration.engine_support import make_processor, read_all

pytestmark = pytest.mark.integration

EVERY_5 = "*/5 * * * *"
TRIGGER = "every"


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2031, 3, 4, hour, minute, second, tzinfo=UTC)


class SetClock:
    """What the schedulers take for now: set by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def sched_settings(topics: Settings, session_tag: str) -> Settings:
    return private_redis_db(topics, session_tag).model_copy(update={"scheduler_poll_s": 0.05})


@pytest.fixture
async def sched_redis(sched_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(sched_settings.redis_url)
    yield client
    await client.aclose()


class Workflows:
    """Schedule workflows of this test (uuid-suffixed), removed at the end so the
    private database's scan does not grow from session to session."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.store = WorkflowStore(redis)
        self.tag = uuid.uuid4().hex[:8]
        self.made: list[str] = []

    async def save(
        self, name: str, now: datetime, cron: str = EVERY_5, *, published: bool = True,
        create: bool = True,
    ) -> str:  # fmt: skip
        identifier = f"sched-{name}-{self.tag}"
        trigger = {"type": "SCHEDULE_TRIGGER", "cron": cron, "published": published}
        definition = {"identifier": identifier,
                      "nodes": [{"identifier": TRIGGER, "config": trigger}]}  # fmt: skip
        await self.store.save(parse_workflow(definition), create=create, now=now)
        if create:
            self.made.append(identifier)
        return identifier

    async def remove(self) -> None:
        for identifier in self.made:
            versions = await self.redis.keys(keys.workflow(identifier) + ":v:*")
            await self.redis.delete(
                keys.workflow(identifier), keys.schedule(identifier, TRIGGER), *versions
            )
            await self.redis.zrem(keys.WORKFLOWS, identifier)


@pytest.fixture
async def workflows(sched_redis: aioredis.Redis) -> AsyncIterator[Workflows]:
    made = Workflows(sched_redis)
    yield made
    await made.remove()


class Scheduler:
    """One scheduler "process": a SchedulerService with its own Redis client and producer."""

    def __init__(self, settings: Settings, clock: SetClock) -> None:
        self.settings = settings
        self.clock = clock
        self._redis: aioredis.Redis | None = None
        self._producer: EventProducer | None = None
        self._service: SchedulerService | None = None

    @property
    def service(self) -> SchedulerService:
        assert self._service is not None
        return self._service

    async def start(self) -> Scheduler:
        self._redis = aioredis.Redis.from_url(self.settings.redis_url)
        self._producer = EventProducer(self.settings)
        await self._producer.start()
        self._service = SchedulerService(self.settings, self._redis, self._producer, self.clock)
        await self._service.start()
        return self

    async def stop(self) -> None:
        if self._service is not None:
            await self._service.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._redis is not None:
            await self._redis.aclose()


async def settle(clock: SetClock, now: datetime, running: Sequence[Scheduler]) -> None:
    """Set the clock, then wait until every running scheduler has made a whole pass
    that started after (a pass ends when its firings are acknowledged and recorded)."""
    clock.now = now
    marks = [s.service.counts.passes for s in running]
    await until(
        lambda: asyncio.sleep(0, [s.service.counts.passes for s in running]),
        lambda passes: all(p >= m + 2 for p, m in zip(passes, marks, strict=True)),
    )


async def triggered(settings: Settings, workflows: set[str]) -> list[tuple[Any, RunTriggered]]:
    """Every RunTriggered of ``workflows`` now on the inbox, with its record (the inbox
    is the session's: other tests put undecodable events there on purpose)."""
    inbox = TopicRegistry.from_settings(settings).inbox.name
    found = []
    for record in await read_all(settings, inbox):
        try:
            event = decode_inbox(record.value or b"")
        except DecodeError:
            continue
        if isinstance(event, RunTriggered) and event.workflow_identifier in workflows:
            found.append((record, event))
    return found


async def ticks_fired(settings: Settings, workflow: str) -> list[str]:
    """The distinct ticks fired for ``workflow``, in order."""
    events = await triggered(settings, {workflow})
    return sorted({str((e.payload or {})["scheduledAt"]) for _, e in events})


def stamps(*ticks: datetime) -> list[str]:
    return [format_timestamp(t) for t in ticks]


async def test_each_tick_fires_once_across_two_schedulers_a_crash_a_restart_and_downtime(
    sched_settings: Settings, sched_redis: aioredis.Redis, workflows: Workflows,
    producer: EventProducer, templates: Any, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="switchyard.scheduler")
    clock = SetClock(at(9, 3))
    wf = await workflows.save("on", at(9, 3))
    off = await workflows.save("off", at(9, 3), published=False)
    gone = await workflows.save("gone", at(9, 3))
    await workflows.store.delete(gone, at(9, 4))
    record = keys.schedule(wf, TRIGGER)

    a = await Scheduler(sched_settings, clock).start()
    b = await Scheduler(sched_settings, clock).start()
    try:
        await settle(clock, at(9, 4, 59), [a, b])
        assert await ticks_fired(sched_settings, wf) == []  # created at 09:03: no past tick
        await settle(clock, at(9, 5), [a, b])
        assert await ticks_fired(sched_settings, wf) == stamps(at(9, 5))
        await settle(clock, at(9, 9, 59), [a, b])
        await settle(clock, at(9, 10), [a, b])
        assert await ticks_fired(sched_settings, wf) == stamps(at(9, 5), at(9, 10))

        # A crashes after producing 09:10 and before recording it (the record is left
        # at 09:05); it restarts, and both fire 09:10 again with the same run id.
        await a.stop()
        await sched_redis.hset(record, "tick", format_timestamp(at(9, 5)))
        a = await Scheduler(sched_settings, clock).start()
        await settle(clock, at(9, 10), [a, b])
        assert await sched_redis.hget(record, "tick") == format_timestamp(at(9, 10)).encode()
        await settle(clock, at(9, 15), [a, b])
    finally:
        await a.stop()
        await b.stop()

    # Down from 09:15 to 09:42: 09:20 … 09:40 were missed; only 09:40 fires.
    c = await Scheduler(sched_settings, clock).start()
    try:
        await settle(clock, at(9, 42), [c])
        # A new version with another cron starts from its own time (09:43): not 09:40
        # again, not 09:45 (not a tick of */10), first 09:50.
        await workflows.save("on", at(9, 43), "*/10 * * * *", create=False)
        await settle(clock, at(9, 45), [c])
        await settle(clock, at(9, 50), [c])
        # Suspended by a new version: 10:00 fires nothing.
        await workflows.save("on", at(9, 51), "*/10 * * * *", published=False, create=False)
        await settle(clock, at(10, 0), [c])
    finally:
        await c.stop()

    expected = [at(9, 5), at(9, 10), at(9, 15), at(9, 40), at(9, 50)]
    assert await ticks_fired(sched_settings, wf) == stamps(*expected)
    assert await triggered(sched_settings, {off, gone}) == []
    found = await triggered(sched_settings, {wf})
    copies = Counter(event.run_id for _, event in found)
    ids = {t: schedule_run_id(wf, TRIGGER, t) for t in expected}
    assert set(copies) == set(ids.values())  # one run id per tick, derived from it
    assert copies[ids[at(9, 10)]] >= 2  # fired again after the crash: the same run id
    for _, event in found:
        tick = datetime.fromisoformat(str((event.payload or {})["scheduledAt"]))
        cron, version = ("*/10 * * * *", 2) if tick == at(9, 50) else (EVERY_5, 1)
        assert event.run_id == ids[tick]
        assert event.payload == {"scheduledAt": format_timestamp(tick), "cron": cron}
        assert (event.node_identifier, event.workflow_version) == (TRIGGER, version)
        assert event.created_by == sched_settings.automation_actor

    fired = f"schedule {wf}/{TRIGGER} fired "
    fires = {r.getMessage().split(" ")[3] for r in caplog.records
             if r.levelno == logging.INFO and r.getMessage().startswith(fired)}  # fmt: skip
    assert fires == set(stamps(*expected))  # each fire logged at INFO
    skipped = [r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING and wf in r.getMessage()]  # fmt: skip
    assert skipped == [
        f"schedule {wf}/{TRIGGER} missed 4 tick(s) from 2031-03-04T09:20:00.000Z to "
        "2031-03-04T09:35:00.000Z; firing only 2031-03-04T09:40:00.000Z"
    ]

    # Through the engine: every copy applied, one run per tick.
    processor = make_processor(sched_settings, sched_redis, producer, templates)
    await processor.handle([InboxRecord(r.topic, r.partition, r.offset, r.key, r.value)
                            for r, _ in found])  # fmt: skip
    partitions = sched_settings.inbox_partitions
    indexed = await _indexed_runs(sched_redis, wf, partitions)
    assert {run_id for run_id, _ in indexed} == set(ids.values())
    # Each in its own partition's index only (a list query reads each index once).
    assert all(tag == keys.tag_of(run_id, partitions) for run_id, tag in indexed)
    store = RunStore(sched_redis, partitions)
    for tick, run_id in ids.items():
        state = await store.get(run_id)
        assert state is not None
        assert (state.status, state.result, state.created_by) == (
            "COMPLETED", "SUCCESS", sched_settings.automation_actor,
        )  # fmt: skip
        assert state.outputs[TRIGGER] == {
            "scheduledAt": format_timestamp(tick),
            "cron": "*/10 * * * *" if tick == at(9, 50) else EVERY_5,
        }


async def _indexed_runs(
    client: aioredis.Redis, workflow: str, partitions: int
) -> list[tuple[str, str]]:
    """(run id, partition tag) of every entry of the workflow's per-partition indexes."""
    indexed: list[tuple[str, str]] = []
    for tag in (partition_tag(p, partitions) for p in range(partitions)):
        members = await client.zrange(keys.runs_of_workflow(workflow, tag), 0, -1)
        indexed += [(m.decode() if isinstance(m, bytes) else str(m), tag) for m in members]
    return indexed


async def test_two_schedulers_started_together_fire_a_tick_once_between_them(
    sched_settings: Settings, sched_redis: aioredis.Redis, workflows: Workflows
) -> None:
    clock = SetClock(at(9, 3))
    wf = await workflows.save("pair", at(9, 3))
    pair = [await Scheduler(sched_settings, clock).start() for _ in range(2)]
    try:
        for minute in (5, 10, 15, 20):
            await settle(clock, at(9, minute), pair)
    finally:
        for scheduler in pair:
            await scheduler.stop()
    found = await triggered(sched_settings, {wf})
    ticks = [at(9, m) for m in (5, 10, 15, 20)]
    assert {e.run_id for _, e in found} == {schedule_run_id(wf, TRIGGER, t) for t in ticks}
    assert len(found) >= len(ticks)  # both may have fired a tick: the same run id
    record = await sched_redis.hgetall(keys.schedule(wf, TRIGGER))
    assert record == {b"tick": format_timestamp(at(9, 20)).encode(), b"version": b"1",
                      b"cron": EVERY_5.encode()}  # fmt: skip


async def test_a_second_start_is_an_error_and_stop_is_idempotent(
    sched_settings: Settings, sched_redis: aioredis.Redis, producer: EventProducer
) -> None:
    service = SchedulerService(sched_settings, sched_redis, producer)
    await service.stop()  # never started: nothing to do
    service = SchedulerService(sched_settings, sched_redis, producer)
    await service.start()
    with pytest.raises(RuntimeError, match=r"start\(\) called when started"):
        await service.start()
    await asyncio.gather(service.stop(), service.stop())
    await service.stop()
    assert not service.running()
    with pytest.raises(RuntimeError, match=r"start\(\) called when stopped"):
        await service.start()


async def test_the_scheduler_command_fires_a_due_tick_and_exits_0_on_sigterm(
    sched_settings: Settings, workflows: Workflows, tmp_path: Path
) -> None:
    # Saved 10 minutes ago on the real clock: the */5 tick of the last 5 minutes is due.
    now = datetime.now(UTC)
    wf = await workflows.save("cli", now - timedelta(minutes=10))
    env = {**os.environ, **environment(sched_settings.model_copy(update={"home": tmp_path}))}
    ready, log = tmp_path / "scheduler.ready", tmp_path / "scheduler.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchyard.cli.main", "scheduler", "--ready-file", str(ready),
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    try:
        await until(lambda: asyncio.sleep(0, ready.exists() or process.returncode is not None),
                    within=60)  # fmt: skip
        assert process.returncode is None, log.read_text()[-2000:]
        found = await until(lambda: triggered(sched_settings, {wf}), within=30)
        assert {e.created_by for _, e in found} == {sched_settings.automation_actor}
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        assert not ready.exists()
    finally:
        if process.returncode is None:
            process.kill()
    assert "fired" in log.read_text()
