"""The timer service against real Kafka and Redis: timers armed by the apply step fire
as ``TimerFired`` on their run's inbox partition, at-least-once, and none is lost.

These tests use a Redis database of their own (picked from the session tag): the
timer sets (one per inbox partition) are per database, and a timer service of another
test sharing it would fire (and forget) their timers into its own inbox.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from switchyard.cli.stack.full import environment
from switchyard.engine.machine.effects import CancelTimer, Decision, SetTimer
from switchyard.engine.machine.state import RunState
from switchyard.engine.store import keys
from switchyard.engine.store.plan import plan_decision, timer_score
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.slots import partition_tag
from switchyard.engine.timers import TimerService
from switchyard.schemas import TimerFired, decode_inbox, node_run_id, timer_id
from switchyard.schemas.settings import Settings
from switchyard.topics.partitioning import partition_of
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.helpers import until
from tests.integration.engine_support import new_run_id
from tests.ports import launcher_redis

pytestmark = pytest.mark.integration

_offsets = itertools.count(1)


@pytest.fixture
async def timer_settings(topics: Settings, session_tag: str) -> Settings:
    db = 1 + int(session_tag, 16) % 15
    base = topics.redis_url.rsplit("/", 1)[0]
    return topics.model_copy(update={"redis_url": f"{base}/{db}", "timer_max_sleep_s": 1.0})


@pytest.fixture
async def timer_redis(timer_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(timer_settings.redis_url)
    # Timers an earlier session left (killed mid-test) would fire into this inbox.
    for tag in _tags(timer_settings):
        await client.delete(keys.timers(tag), keys.timer_details(tag))
    yield client
    await client.aclose()


def _tags(settings: Settings) -> list[str]:
    """Every inbox partition's hash tag: each partition keeps its runs' timers."""
    partitions = TopicRegistry.from_settings(settings).inbox.partitions
    return [partition_tag(p, partitions) for p in range(partitions)]


def _tag(settings: Settings, run_id: str) -> str:
    return keys.tag_of(run_id, TopicRegistry.from_settings(settings).inbox.partitions)


async def _timers_left(
    redis: aioredis.Redis, settings: Settings, due_by: float | None = None
) -> int:
    """Timers still armed in any partition (those due by ``due_by`` ms, if given)."""
    total = 0
    for tag in _tags(settings):
        if due_by is None:
            total += int(await redis.zcard(keys.timers(tag)))
        else:
            total += int(await redis.zcount(keys.timers(tag), "-inf", due_by))
    return total


class InboxTap:
    """Every record that reaches the inbox after it starts, collected in the background."""

    def __init__(self, settings: Settings) -> None:
        self.topic = TopicRegistry.from_settings(settings).inbox.name
        self.partitions = settings.inbox_partitions
        self.records: list[ConsumerRecord[bytes, bytes]] = []
        self._consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)

    async def __aenter__(self) -> InboxTap:
        await self._consumer.start()
        parts = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        self._consumer.assign(parts)
        await self._consumer.seek_to_end(*parts)
        for tp in parts:
            await self._consumer.position(tp)  # pins "the end" to now
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *_: object) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    async def _collect(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                self.records += records

    def fired(self, run_ids: set[str]) -> list[tuple[ConsumerRecord[bytes, bytes], TimerFired]]:
        found = []
        for record in self.records:
            event = decode_inbox(record.value or b"")
            if isinstance(event, TimerFired) and event.run_id in run_ids:
                found.append((record, event))
        return found

    async def fired_ids(self, run_ids: set[str]) -> set[str]:
        return {event.timer_id for _, event in self.fired(run_ids)}


def _state(run_id: str) -> RunState:
    now = datetime.now(UTC)
    return RunState(
        run_id=run_id, workflow_identifier="timers", workflow_version=1, trigger="trigger",
        created_by="test", created_at=now, updated_at=now,
    )  # fmt: skip


async def _apply(redis: aioredis.Redis, settings: Settings, effects: Sequence[object]) -> None:
    """Arm or disarm timers the engine's way: a plan of one step, through RunStore.apply."""
    registry = TopicRegistry.from_settings(settings)
    plans = []
    for effect in effects:
        assert isinstance(effect, SetTimer | CancelTimer)
        decision = Decision(state=_state(effect.run_id), effects=(effect,))
        plans.append(
            plan_decision(
                None,
                decision,
                offset=next(_offsets),
                registry=registry,
                tag=keys.tag_of(effect.run_id, registry.inbox.partitions),
            )
        )
    assert set(await RunStore(redis, registry.inbox.partitions).apply(plans)) == {1}


def _set(run_id: str, due: datetime, node: str = "work") -> SetTimer:
    nr = node_run_id(run_id, node)
    return SetTimer(
        id=f"set:{nr}", timer_id=timer_id(run_id, nr, "node_timeout"), run_id=run_id,
        node_run_id=nr, purpose="node_timeout", due_at=due,
    )  # fmt: skip


def _cancel(timer: SetTimer) -> CancelTimer:
    return CancelTimer(id=f"cancel:{timer.timer_id}", timer_id=timer.timer_id, run_id=timer.run_id)


async def _armed(redis: aioredis.Redis, settings: Settings, timer: SetTimer) -> float | None:
    """The timer's due time in its run's partition's set (None: not armed there)."""
    score: float | None = await redis.zscore(
        keys.timers(_tag(settings, timer.run_id)), timer.timer_id
    )
    return score


@pytest.fixture
async def tap(timer_settings: Settings) -> AsyncIterator[InboxTap]:
    async with InboxTap(timer_settings) as found:
        yield found


@pytest.fixture
async def service(
    timer_settings: Settings, timer_redis: aioredis.Redis, producer: EventProducer
) -> AsyncIterator[TimerService]:
    async with TimerService(timer_settings, timer_redis, producer) as running:
        yield running


async def test_an_armed_timer_fires_on_its_runs_partition_at_its_due_time_and_is_forgotten(
    timer_settings: Settings, timer_redis: aioredis.Redis, tap: InboxTap, service: TimerService
) -> None:
    run_id = new_run_id()
    timer = _set(run_id, datetime.now(UTC) + timedelta(seconds=1.5))
    await _apply(timer_redis, timer_settings, [timer])
    assert await _armed(timer_redis, timer_settings, timer) == timer_score(timer.due_at)

    [(record, event)] = await until(lambda: asyncio.sleep(0, tap.fired({run_id})), within=10)
    assert record.key == run_id.encode()
    assert record.partition == partition_of(run_id.encode(), timer_settings.inbox_partitions)
    assert (event.timer_id, event.node_run_id, event.purpose) == (
        timer.timer_id, timer.node_run_id, "node_timeout",
    )  # fmt: skip
    assert event.due_at == timer.due_at.replace(microsecond=timer.due_at.microsecond // 1000 * 1000)
    late = (event.fired_at - timer.due_at).total_seconds()
    # Never early; woken by the apply step's wake-up, not by the 1 s capped sleep.
    assert -0.001 <= late < 0.5, late
    await until(lambda: _armed(timer_redis, timer_settings, timer), lambda score: score is None)
    details = keys.timer_details(_tag(timer_settings, run_id))
    assert await timer_redis.hget(details, timer.timer_id) is None
    assert service.counts.fired >= 1


async def test_a_cancelled_timer_never_fires(
    timer_settings: Settings, timer_redis: aioredis.Redis, tap: InboxTap, service: TimerService
) -> None:
    run_id = new_run_id()
    due = datetime.now(UTC) + timedelta(seconds=1)
    kept, cancelled = _set(run_id, due, "kept"), _set(run_id, due, "cancelled")
    await _apply(timer_redis, timer_settings, [kept, cancelled])
    await _apply(timer_redis, timer_settings, [_cancel(cancelled)])

    # Both were due at the same instant: had the cancelled one been armed, it would
    # have been taken in the same batch as the kept one.
    await until(lambda: tap.fired_ids({run_id}), lambda ids: kept.timer_id in ids)
    await until(lambda: _armed(timer_redis, timer_settings, kept), lambda score: score is None)
    assert await tap.fired_ids({run_id}) == {kept.timer_id}
    details = keys.timer_details(_tag(timer_settings, run_id))
    assert await timer_redis.hget(details, cancelled.timer_id) is None


class GatedProducer(EventProducer):
    """The real producer, whose ``flush_sent`` waits at a gate: a firing held in flight."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.in_flight = asyncio.Event()
        self.release = asyncio.Event()

    async def flush_sent(self, futures: object) -> None:  # type: ignore[override]
        self.in_flight.set()
        await self.release.wait()
        await EventProducer.flush_sent(futures)  # type: ignore[arg-type]


async def test_a_timer_re_armed_later_while_its_firing_is_in_flight_survives(
    timer_settings: Settings, timer_redis: aioredis.Redis, tap: InboxTap
) -> None:
    run_id = new_run_id()
    timer = _set(run_id, datetime.now(UTC) + timedelta(milliseconds=200))
    later = timer.model_copy(update={"due_at": datetime.now(UTC) + timedelta(seconds=2)})
    gated = GatedProducer(timer_settings)
    async with gated, TimerService(timer_settings, timer_redis, gated) as service:
        await _apply(timer_redis, timer_settings, [timer])
        await asyncio.wait_for(gated.in_flight.wait(), 10)  # taken, not yet acknowledged
        await _apply(timer_redis, timer_settings, [later])  # the engine moves it meanwhile
        gated.release.set()
        await until(lambda: asyncio.sleep(0, service.counts.superseded), lambda n: n >= 1)
        # The firing went out; the re-armed timer was not forgotten with it.
        assert await _armed(timer_redis, timer_settings, timer) == timer_score(later.due_at)
        fired = await until(lambda: asyncio.sleep(0, tap.fired({run_id})),
                            lambda found: len(found) == 2)  # fmt: skip
    [first, second] = sorted((event for _, event in fired), key=lambda e: e.fired_at)
    assert first.due_at is not None
    assert second.due_at is not None
    assert abs((first.due_at - timer.due_at).total_seconds()) < 0.001
    assert abs((second.due_at - later.due_at).total_seconds()) < 0.001
    assert second.fired_at >= later.due_at.replace(
        microsecond=later.due_at.microsecond // 1000 * 1000
    )
    assert await _armed(timer_redis, timer_settings, timer) is None


async def test_two_instances_fire_every_timer_and_duplicates_carry_the_same_timer_id(
    timer_settings: Settings, timer_redis: aioredis.Redis, tap: InboxTap, producer: EventProducer
) -> None:
    # A certain duplicate first: A takes the timer and is held before Kafka's ack; B
    # takes the same timer (still armed), fires and forgets it; then A's firing lands.
    run_id = new_run_id()
    timer = _set(run_id, datetime.now(UTC))
    gated = GatedProducer(timer_settings)
    async with gated, TimerService(timer_settings, timer_redis, gated) as a:
        await _apply(timer_redis, timer_settings, [timer])
        await asyncio.wait_for(gated.in_flight.wait(), 10)
        async with TimerService(timer_settings, timer_redis, producer) as b:
            await until(lambda: asyncio.sleep(0, b.counts.forgotten), lambda n: n >= 1)
        gated.release.set()
        await until(lambda: asyncio.sleep(0, a.counts.superseded), lambda n: n >= 1)
    duplicates = await until(lambda: asyncio.sleep(0, tap.fired({run_id})),
                             lambda found: len(found) == 2)  # fmt: skip
    assert {event.timer_id for _, event in duplicates} == {timer.timer_id}
    assert {(r.key, r.partition) for r, _ in duplicates} == {
        (run_id.encode(), partition_of(run_id.encode(), timer_settings.inbox_partitions))
    }
    assert len({event.model_dump_json(exclude={"fired_at"}) for _, event in duplicates}) == 1

    # Then many timers, both instances free-running: every timer fires at least once.
    runs = {new_run_id() for _ in range(100)}
    now = datetime.now(UTC)
    timers = [_set(r, now + timedelta(milliseconds=10 * i)) for i, r in enumerate(runs)]
    async with (
        EventProducer(timer_settings) as other,
        TimerService(timer_settings, timer_redis, producer),
        TimerService(timer_settings, timer_redis, other),
    ):
        await _apply(timer_redis, timer_settings, timers)
        expected = {t.timer_id for t in timers}
        await until(lambda: tap.fired_ids(runs), lambda ids: ids == expected, within=20)
        await until(lambda: _timers_left(timer_redis, timer_settings), lambda n: n == 0)
    by_timer: dict[str, set[tuple[str, object, object]]] = defaultdict(set)
    for record, event in tap.fired(runs):
        by_timer[event.timer_id].add((record.key.decode() if record.key else "", event.run_id,
                                      event.due_at))  # fmt: skip
    assert all(len(seen) == 1 for seen in by_timer.values()), by_timer


def _stray_process_guard(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()


@pytest.fixture
def cli_env(timer_settings: Settings, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, **environment(timer_settings.model_copy(update={"home": tmp_path}))}


async def _start_cli(env: dict[str, str], tmp_path: Path, n: int) -> asyncio.subprocess.Process:
    ready, log = tmp_path / f"timers-{n}.ready", tmp_path / f"timers-{n}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchyard.cli.main", "timers", "--ready-file", str(ready),
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    await until(lambda: asyncio.sleep(0, ready.exists() or process.returncode is not None),
                within=60)  # fmt: skip
    assert process.returncode is None, log.read_text()[-2000:]
    return process


@pytest.mark.slow
async def test_kill_9_of_the_timers_process_loses_no_timer(
    timer_settings: Settings, timer_redis: aioredis.Redis, tap: InboxTap,
    cli_env: dict[str, str], tmp_path: Path,
) -> None:  # fmt: skip
    runs = {new_run_id() for _ in range(300)}
    now = datetime.now(UTC)
    # Due over the next 6 s: some before the kill, some while the process is down,
    # some after the restart.
    timers = [_set(r, now + timedelta(milliseconds=1000 + 20 * i)) for i, r in enumerate(runs)]
    expected = {t.timer_id for t in timers}
    first = await _start_cli(cli_env, tmp_path, 1)
    try:
        await _apply(timer_redis, timer_settings, timers)
        await until(lambda: tap.fired_ids(runs), lambda ids: len(ids) >= 50, within=20)
        first.send_signal(signal.SIGKILL)
        await first.wait()

        # Down while more come due.
        async def due_unfired() -> int:
            now_ms = int(datetime.now(UTC).timestamp() * 1000)
            return await _timers_left(timer_redis, timer_settings, due_by=now_ms)

        await until(due_unfired, lambda n: n >= 30, within=20)
        down = len(await tap.fired_ids(runs))
        assert down < len(expected)
        second = await _start_cli(cli_env, tmp_path, 2)
        try:
            await until(lambda: tap.fired_ids(runs), lambda ids: ids == expected, within=30)
            await until(lambda: _timers_left(timer_redis, timer_settings), lambda n: n == 0)
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 30) == 0
        finally:
            _stray_process_guard(second)
    finally:
        _stray_process_guard(first)
    for _, event in tap.fired(runs):
        assert event.due_at is not None
        assert event.fired_at >= event.due_at


@pytest.mark.slow
async def test_timers_due_while_redis_is_away_fire_once_it_is_back(
    timer_settings: Settings, tap: InboxTap, producer: EventProducer, tmp_path: Path
) -> None:
    settings, server = launcher_redis(timer_settings.model_copy(update={"home": tmp_path}))
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        runs = {new_run_id() for _ in range(20)}
        now = datetime.now(UTC)
        timers = [_set(r, now + timedelta(milliseconds=500 + 10 * i)) for i, r in enumerate(runs)]
        await _apply(client, settings, timers)
        async with TimerService(settings, client, producer) as service:
            server.stop()  # a clean shutdown writes the AOF: the timers survive it
            await until(lambda: asyncio.sleep(0, service.counts.failures), lambda n: n >= 2)
            last_due = max(t.due_at for t in timers)
            await until(lambda: asyncio.sleep(0, datetime.now(UTC) > last_due), within=5)
            assert await tap.fired_ids(runs) == set()
            server.wait_ready(server.start())
            expected = {t.timer_id for t in timers}
            await until(lambda: tap.fired_ids(runs), lambda ids: ids == expected, within=30)
            await until(lambda: _timers_left(client, settings), lambda n: n == 0)
    finally:
        await client.aclose()
        server.stop()


async def test_a_second_start_is_an_error_and_stop_is_idempotent(
    timer_settings: Settings, timer_redis: aioredis.Redis, producer: EventProducer
) -> None:
    service = TimerService(timer_settings, timer_redis, producer)
    await service.stop()  # never started: nothing to do
    service = TimerService(timer_settings, timer_redis, producer)
    await service.start()
    with pytest.raises(RuntimeError, match=r"start\(\) called when started"):
        await service.start()
    await asyncio.gather(service.stop(), service.stop())  # the second waits for the first
    await service.stop()
    assert not service.running()
    with pytest.raises(RuntimeError, match=r"start\(\) called when stopped"):
        await service.start()
