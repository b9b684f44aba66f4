"""Timer lateness: how late a due timer becomes ``TimerFired``, with 10,000 timers pending.

    python -m benchmarks.timers [--timers 10000] [--spread 10] [--engine]

against running Kafka and Redis (``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL``, else
the settings' defaults: ``switchyard stack up --infra-only``), on topics of its own and
in Redis database ``--redis-db`` (15): the timer set is one per database, and this
benchmark's timer service must not fire (and forget) a live stack's timers. The timer
service runs as a real process (``switchyard timers``, default settings: batch 500,
sleep at most 1 s); timers are armed through the engine's apply script.

- spread: ``--timers`` timers, all armed (pending) before the first is due, due evenly
  over ``--spread`` seconds. Lateness is ``TimerFired.firedAt - due`` (the service's
  clock, ms resolution) and due → the record reaching a consumer in this process.
- burst: as many timers due at one instant: how fast a backlog of due timers drains.
- engine (``--engine``): the real engine (``switchyard engine``) as well: ``--runs``
  runs of trigger → KAFKA node with ``timeoutSeconds`` ``--timeout`` that nobody
  answers, triggered at ``--rate`` per second while ``--timers`` far-future timers are
  pending. Lateness due → applied is the node run's ``completedAt - (createdAt +
  timeoutSeconds)``.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from switchyard.cli.stack.full import environment
from switchyard.engine.machine.effects import CancelTimer, SetTimer
from switchyard.engine.store import keys
from switchyard.engine.store.client import redis_client
from switchyard.engine.store.plan import ApplyPlan, timer_commands
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.slots import partition_tag
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.schemas import (
    RunEvent,
    RunTriggered,
    TimerFired,
    decode,
    decode_inbox,
    encode,
    new_run_id,
    node_run_id,
    parse_workflow,
    timer_id,
)
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.connection import kafka_options
from switchyard.topics.partitioning import partition_of
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry

_offsets = itertools.count(1)


def _settings(db: int, home: Path) -> Settings:
    tag = uuid.uuid4().hex[:6]
    overrides: dict[str, object] = {
        "topic_prefix": f"bench-timers-{tag}.", "engine_group": f"bench-timers-{tag}",
        "home": home,
    }  # fmt: skip
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        overrides["kafka_bootstrap_servers"] = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    url = urlsplit(os.environ.get("REDIS_URL") or Settings().redis_url)
    overrides["redis_url"] = url._replace(path=f"/{db}").geturl()
    return Settings(**overrides)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def _process(name: str, settings: Settings) -> AsyncIterator[None]:
    """``switchyard <name>`` as a real process, ready when its ready file appears."""
    ready, log = settings.home / f"{name}.ready", settings.home / f"{name}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchyard.cli.main", name, "--ready-file", str(ready),
            env={**os.environ, **environment(settings)},
            stdout=asyncio.subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    try:
        started = time.monotonic()
        while not ready.exists():
            if process.returncode is not None or time.monotonic() - started > 60:
                raise RuntimeError(f"{name} did not start:\n{log.read_text()[-2000:]}")
            await asyncio.sleep(0.05)
        yield
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 40)
            except TimeoutError:
                process.kill()
                await process.wait()


@dataclass
class _Seen:
    """What reached this process: per timer its first (firedAt, received) and repeats."""

    first: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    repeats: int = 0
    completed: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, done: Callable[[], bool], within: float) -> None:
        """Wait (on the collector's batches) until ``done()``, or ``within`` seconds."""
        deadline = time.monotonic() + within
        while not done() and (left := deadline - time.monotonic()) > 0:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)


@contextlib.asynccontextmanager
async def _tap(settings: Settings, wanted: set[str]) -> AsyncIterator[_Seen]:
    """Consume the inbox (TimerFired of ``wanted`` runs) and run events (completions)."""
    registry = TopicRegistry.from_settings(settings)
    consumer = AIOKafkaConsumer(**kafka_options(settings))
    await consumer.start()
    parts = [TopicPartition(t.name, p) for t in (registry.inbox, registry.run_events)
             for p in range(t.partitions)]  # fmt: skip
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for tp in parts:
        await consumer.position(tp)
    seen = _Seen()

    async def collect() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            received = datetime.now(UTC)
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == registry.inbox.name:
                        event = decode_inbox(record.value or b"")
                        if isinstance(event, TimerFired) and event.run_id in wanted:
                            if event.timer_id in seen.first:
                                seen.repeats += 1
                            else:
                                seen.first[event.timer_id] = (event.fired_at, received)
                    else:
                        change = decode(record.value or b"", RunEvent)
                        if change.kind == "run.completed" and change.run_id in wanted:
                            seen.completed.add(change.run_id)
            if batches:
                seen.changed.set()

    task = asyncio.create_task(collect())
    try:
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()


def _timers(due: Sequence[datetime]) -> list[SetTimer]:
    found = []
    for at in due:
        run_id = new_run_id(os.urandom)
        nr = node_run_id(run_id, "wait")
        found.append(SetTimer(
            id=f"bench:{nr}", timer_id=timer_id(run_id, nr, "node_timeout"), run_id=run_id,
            node_run_id=nr, purpose="node_timeout", due_at=at,
        ))  # fmt: skip
    return found


async def _apply(
    settings: Settings, redis: aioredis.Redis, effects: Sequence[SetTimer | CancelTimer]
) -> None:
    """Through the engine's apply script, 500 steps a call (one call per partition
    among them), each in its run's partition, guarded by a scratch hash per partition
    (in the partition's slot, as a run's hash is)."""
    partitions = settings.inbox_partitions
    store, scratch = RunStore(redis, partitions), uuid.uuid4().hex
    guards: set[str] = set()
    for start in range(0, len(effects), 500):
        plans = []
        for e in effects[start : start + 500]:
            partition = partition_of(e.run_id, partitions)
            tag = partition_tag(partition, partitions)
            guard = f"sy:bench:timers:{tag}:{scratch}"
            guards.add(guard)
            plans.append(ApplyPlan(run_id=e.run_id, offset=next(_offsets), step="bench",
                                   partition=partition, guard=guard, tag=tag,
                                   commands=timer_commands(e, tag)))  # fmt: skip
        await store.apply(plans)
    for guard in guards:  # one DEL each: on a cluster they are in several slots
        await redis.delete(guard)


def _row(name: str, values: Sequence[float], extra: str = "") -> str:
    if not values:
        return f"{name:<56} (none)"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{name:<56} {statistics.median(ordered):>8.1f} {p99:>8.1f} {ordered[-1]:>8.1f} "
            f"{len(ordered):>7}  {extra}")  # fmt: skip


def _ms(delta: timedelta) -> float:
    return delta.total_seconds() * 1000


async def _phase(
    settings: Settings, redis: aioredis.Redis, name: str, due: Sequence[datetime]
) -> list[str]:
    """Arm timers due at ``due`` and measure each one's firing."""
    timers = _timers(due)
    wanted = {t.run_id for t in timers}
    async with _tap(settings, wanted) as seen:
        await _apply(settings, redis, timers)
        armed_at = datetime.now(UTC)
        if armed_at > min(due):
            print(f"  ({name}: arming took until after the first due time)")
        within = (max(due) - armed_at).total_seconds() + 120
        await seen.until(lambda: len(seen.first) == len(timers), within)
        await asyncio.sleep(0.5)  # let late repeats arrive before counting them
    by_id = {t.timer_id: t for t in timers}
    fired = [_ms(f - by_id[i].due_at) for i, (f, _) in seen.first.items()]
    received = [_ms(r - by_id[i].due_at) for i, (_, r) in seen.first.items()]
    drain = max((r for _, r in seen.first.values()), default=armed_at) - min(due)
    rate = len(seen.first) / max(drain.total_seconds(), 1e-3)
    lost = len(timers) - len(seen.first)
    return [
        _row(f"{name}: due → fired", fired, f"repeats {seen.repeats}, missing {lost}"),
        _row(
            f"{name}: due → on the inbox here",
            received,
            f"drained at {rate:,.0f} timers/s" if min(due) == max(due) else "",
        ),
    ]


async def _engine_phase(
    settings: Settings, redis: aioredis.Redis, runs: int, rate: float, timeout_s: float
) -> list[str]:
    workflow = f"bench-timeouts-{uuid.uuid4().hex[:6]}"
    await WorkflowStore(redis).save(
        parse_workflow({"identifier": workflow, "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "wait", "config": {"type": "KAFKA", "payload": {},
                                              "timeoutSeconds": timeout_s}},
        ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "wait"}]}),
        create=True, now=datetime.now(UTC),
    )  # fmt: skip
    run_ids = [new_run_id(os.urandom) for _ in range(runs)]
    inbox = TopicRegistry.from_settings(settings).inbox.name
    async with (
        _process("engine", settings), _tap(settings, set(run_ids)) as seen,
        EventProducer(settings) as producer,
    ):  # fmt: skip
        started = time.monotonic()
        for n, run_id in enumerate(run_ids):
            event = RunTriggered(run_id=run_id, workflow_identifier=workflow,
                                 created_by="bench", triggered_at=datetime.now(UTC))  # fmt: skip
            await producer.send(inbox, run_id, encode(event))
            ahead = started + (n + 1) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        await seen.until(lambda: len(seen.completed) == runs, timeout_s + 120)
    store, late, timed_out = RunStore(redis, settings.inbox_partitions), [], 0
    for run_id in run_ids:
        state = await store.get(run_id)
        node_run = state.node_run_of("wait") if state else None
        if node_run is None or node_run.completed_at is None:
            continue
        late.append(_ms(node_run.completed_at - node_run.created_at) - timeout_s * 1000)
        timed_out += node_run.result == "FAILED"
    name = f"engine, {runs} runs at {rate:g}/s, timeout {timeout_s:g} s"
    return [_row(f"{name}: due → applied", late,
                 f"{timed_out} FAILED by timeout, {runs - len(late)} unfinished")]  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-timers-") as home:
        settings = _settings(args.redis_db, Path(home))
        await ensure_topics(settings)
        redis = redis_client(settings)
        try:
            await _bench(settings, redis, args)
        finally:
            await redis.aclose()


async def _bench(settings: Settings, redis: aioredis.Redis, args: argparse.Namespace) -> None:
    n = args.timers
    partitions = settings.inbox_partitions
    armed = sum([int(await redis.zcard(keys.timers(partition_tag(p, partitions))))
                 for p in range(partitions)])  # fmt: skip
    if armed:
        print(f"note: Redis db {args.redis_db} already holds {armed} armed timers; "
              "they fire into this benchmark's topics")  # fmt: skip
    rows: list[str] = []
    async with _process("timers", settings):
        lead = timedelta(seconds=2 + n / 5000)  # arming 10,000 takes well under a second
        start = datetime.now(UTC) + lead
        spread = [start + timedelta(seconds=args.spread * i / n) for i in range(n)]
        rows += await _phase(settings, redis, f"spread, {n} over {args.spread:g} s", spread)
        burst = datetime.now(UTC) + lead
        rows += await _phase(settings, redis, f"burst, {n} due at once", [burst] * n)
        if args.engine:
            # Far-future timers, pending throughout, then disarmed.
            pending = _timers([datetime.now(UTC) + timedelta(hours=1)] * n)
            await _apply(settings, redis, pending)
            try:
                rows += await _engine_phase(settings, redis, args.runs, args.rate, args.timeout)
            finally:
                await _apply(settings, redis, [CancelTimer(id=f"bench-cancel:{t.timer_id}",
                                                           timer_id=t.timer_id, run_id=t.run_id)
                                               for t in pending])  # fmt: skip
    batch, sleep = settings.timer_batch_max, settings.timer_max_sleep_s
    print(f"timer lateness, ms (switchyard timers: batch {batch}, sleep ≤ {sleep:g} s; "
          f"{settings.inbox_partitions} partitions)")  # fmt: skip
    print(f"{'':<56} {'p50':>8} {'p99':>8} {'max':>8} {'timers':>7}")
    for row in rows:
        print(row)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=10_000, help="timers per phase")
    parser.add_argument("--spread", type=float, default=10.0, help="seconds the spread spans")
    parser.add_argument("--redis-db", type=int, default=15, help="Redis database to use")
    parser.add_argument("--engine", action="store_true", help="also due → applied by the engine")
    parser.add_argument("--runs", type=int, default=500, help="engine phase: runs")
    parser.add_argument("--rate", type=float, default=100.0, help="engine phase: runs per second")
    parser.add_argument("--timeout", type=float, default=2.0, help="engine phase: timeoutSeconds")
    asyncio.run(main(parser.parse_args()))
