"""Two ``switchyard engine`` processes in one consumer group (real Kafka and Redis).

They share the inbox partitions (each holds some, together all, none twice); under a
small load of chain runs, SIGTERM to one moves its partitions to the other, and every
run completes with each transition applied once: one node-run id per node of a run,
each completed once, and each run's events numbered without a gap or a repeat.

A late writer (an engine whose batch is applied after its partitions moved and the
new owner applied past it) is refused by the run's stored offset: that is covered in
``tests/integration/test_partitions.py`` (an apply at a lower offset returns 0 and
leaves the run; a batch handled again is all REDELIVERED), and below for the case a
rebalance makes, the stale apply carrying the state it decided from.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from switchyard.cli.stack.full import environment
from switchyard.consumers import KafkaWorker, WorkContext
from switchyard.engine.store import keys
from switchyard.engine.store.plan import ApplyPlan
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.partitioning import partition_of
from switchyard.topics.producer import EventProducer
from switchyard.topics.reader import read_topic
from switchyard.topics.registry import TopicRegistry
from tests.helpers import private_redis_db, until
from tests.integration.engine_support import Driver, define_two_kafka_steps, new_run_id
from tests.ports import free_port, on_free_ports_async, until_ready

pytestmark = pytest.mark.integration

_ASSIGNED = re.compile(r"assigned \d+ partitions of \S+: \[([\d, ]*)\]")


@dataclass
class Engine:
    name: str
    ops_port: int
    process: asyncio.subprocess.Process
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def partitions(self) -> set[int]:
        """What its /readyz says it holds (nothing once it has stopped)."""
        if self.process.returncode is not None:
            return set()
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                body = (await client.get(f"http://127.0.0.1:{self.ops_port}/readyz")).json()
        except httpx.HTTPError:
            return set()
        found = _ASSIGNED.search(body["checks"]["consumer"]["detail"])
        return {int(p) for p in found.group(1).split(",") if p.strip()} if found else set()


@pytest.fixture
async def own(settings: Settings, session_tag: str) -> Settings:
    """Topics of this test's own (a group of its own, nothing else's records) on the
    session's Redis db, and a short session: a static member's partitions move after it."""
    prefix = f"{settings.topic_prefix}e{uuid.uuid4().hex[:8]}."
    found = private_redis_db(settings, session_tag).model_copy(
        update={
            "topic_prefix": prefix,
            "engine_session_timeout_s": 6.0,
            "engine_group": f"two-engines-{uuid.uuid4().hex[:8]}",
        }
    )
    await ensure_topics(found)
    return found


async def _engine_up(settings: Settings, home: Path, name: str) -> Engine:
    """One engine, ready, with its ops endpoints on a port free a moment ago; one that
    lost the port meanwhile fails as a port clash (``EADDRINUSE``), to start again."""
    port, log, ready = free_port(), home / f"{name}.log", home / f"{name}.ready"
    env = {**os.environ, **environment(settings), "SWITCHYARD_ENGINE_INSTANCE_ID": name,
           "SWITCHYARD_ENGINE_OPS_PORT": str(port)}  # fmt: skip
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchyard.cli.main", "engine",
            "--ready-file", str(ready), env=env, stdout=sink, stderr=sink,
        )  # fmt: skip
    engine = Engine(name, port, process, log)

    try:
        await until_ready(process, ready, engine.logs, within=60)
    except BaseException:
        await _kill(engine)
        raise
    return engine


async def _kill(engine: Engine) -> None:
    if engine.process.returncode is None:
        engine.process.kill()
        await engine.process.wait()


@contextlib.asynccontextmanager
async def engines(settings: Settings, home: Path, names: list[str]) -> AsyncIterator[list[Engine]]:
    found = await asyncio.gather(
        *(on_free_ports_async(partial(_engine_up, settings, home, n)) for n in names),
        return_exceptions=True,
    )
    started = [engine for engine in found if isinstance(engine, Engine)]
    try:
        for failed in found:
            if isinstance(failed, BaseException):
                raise failed
        yield started
    finally:
        for engine in started:
            await _kill(engine)


async def holdings(found: list[Engine]) -> list[set[int]]:
    return [await engine.partitions() for engine in found]


def split_among(count: int, partitions: int) -> Any:
    """Each of ``count`` engines holds some partitions, none twice, all together."""

    def check(held: list[set[int]]) -> bool:
        together = set().union(*held)
        return (
            all(held[:count])
            and sum(map(len, held)) == len(together)
            and together == set(range(partitions))
        )

    return check


async def work(ctx: WorkContext) -> dict[str, Any]:
    return {"done": ctx.node_run_id}


async def test_two_engines_share_the_inbox_and_one_stopping_loses_and_repeats_nothing(
    own: Settings, tmp_path: Path
) -> None:
    redis = aioredis.Redis.from_url(own.redis_url)
    registry = TopicRegistry.from_settings(own)
    triggered: list[str] = []
    try:
        async with EventProducer(own) as producer:
            driver = Driver(own, redis, producer)
            workflow = await define_two_kafka_steps(driver, "two-engines")

            async def load(count: int) -> None:
                for _ in range(count):
                    triggered.append(await driver.trigger(workflow, {}))

            async with (
                engines(own, tmp_path, ["engine-a", "engine-b"]) as (first, second),
                KafkaWorker(own, work, workflows=[workflow]),
            ):
                whole = split_among(2, own.inbox_partitions)
                await until(lambda: holdings([first, second]), whole, within=30)
                await load(20)
                first.process.send_signal(signal.SIGTERM)
                await load(20)  # while the first drains and its partitions move
                assert await asyncio.wait_for(first.process.wait(), 30) == 0, first.logs()
                # It had applied its share of the load before it stopped.
                applied = re.search(r"engine stopping after (\d+) events", first.logs())
                assert applied is not None, first.logs()
                assert int(applied.group(1)) > 0, first.logs()
                alone = split_among(1, own.inbox_partitions)
                await until(lambda: holdings([second]), alone, within=30)
                await load(10)
                store = RunStore(redis, registry.inbox.partitions)

                async def finished() -> int:
                    stored = await store.load(triggered)
                    return sum(s.state.status == "COMPLETED" for s in stored.values())

                try:
                    await until(finished, lambda done: done == len(triggered), within=60)
                except AssertionError as error:
                    raise AssertionError(f"{error}\n{second.logs()}") from None
                stored = await store.load(triggered)
                assert {s.state.result for s in stored.values()} == {"SUCCESS"}
    finally:
        await redis.aclose()

    mine = set(triggered)
    seqs: dict[str, list[int]] = defaultdict(list)
    completions: dict[str, int] = defaultdict(int)
    for record in await read_topic(own, registry.run_events.name):
        event = orjson.loads(record.value)
        if event["runId"] in mine:
            seqs[event["runId"]].append(event["seq"])
            completions[event["nodeRunId"]] += event["kind"] == "nodeRun.completed"
    assert set(seqs) == mine
    for run_id, found in seqs.items():
        assert sorted(found) == list(range(min(found), min(found) + len(found))), run_id
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in await read_topic(own, registry.node_run_requests.name):
        context = orjson.loads(record.value)["context"]
        ids[(context["workflowRunId"], context["nodeIdentifier"])].add(context["nodeRunId"])
    assert all(len(found) == 1 for found in ids.values()), ids
    assert len(ids) == 2 * len(triggered)  # work and after, in every run
    requested = {next(iter(found)) for found in ids.values()}
    assert {nr: completions[nr] for nr in requested} == dict.fromkeys(requested, 1)


async def test_a_late_writer_after_a_rebalance_loses_against_the_stored_offset(
    settings: Settings, redis: aioredis.Redis
) -> None:
    """The old owner decided offsets 10..11 from the state at offset 9 but applies late;
    the new owner has applied 10..12 meanwhile. The old owner's apply is refused (0,
    at an offset applied or below) and leaves the run as the new owner wrote it."""
    run = new_run_id()
    partitions = TopicRegistry.from_settings(settings).inbox.partitions
    store = RunStore(redis, partitions)
    # Both owners read the run's partition, so both name its keys by that tag.
    home = partition_of(run, partitions)
    tag = partition_tag(home, partitions)

    def plan(offset: int) -> ApplyPlan:
        return ApplyPlan(run, offset, f"1:{offset}", partition=home, tag=tag)

    assert await store.apply([plan(9)]) == [1]
    for offset in (10, 11, 12):  # the new owner
        assert await store.apply([plan(offset)]) == [1]
    written = await redis.hgetall(keys.run(run, tag))
    for offset in (11, 12):  # the old owner, late: at or below the stored offset
        assert await store.apply([plan(offset)]) == [0]
    assert await redis.hgetall(keys.run(run, tag)) == written
    assert written[b"offset"] == b"12"
