"""The ClaimWorker pipelines its claims: the next batch is claimed while the current
one runs, held until a handler is free, run even when the worker stops, and dropped
unacked once its visibility timeout has passed."""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from switchyard.consumers import ClaimWorker, RunsClient, WorkContext
from switchyard.engine.store import keys
from switchyard.engine.store.client import redis_client
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas.settings import Settings
from tests.bridge.support import integration_workflow, new_installation
from tests.helpers import until


class _Blocked:
    """A handler whose calls wait until released."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = asyncio.Event()

    async def __call__(self, ctx: WorkContext) -> dict[str, bool]:
        self.started.append(ctx.node_run_id)
        await self.release.wait()
        return {"ok": True}


def _claim_sets(installation: str, partitions: int) -> list[str]:
    """``installation``'s pending set in each inbox partition (its runs' slots)."""
    return [keys.claims(installation, partition_tag(p, partitions)) for p in range(partitions)]


async def _pending(
    client: RunsClient, redis: aioredis.Redis, count: int, partitions: int
) -> tuple[str, list[str]]:
    installation, workflow = new_installation(), f"wf-{uuid.uuid4().hex[:10]}"
    await client.request("POST", "/v1/workflows", json=integration_workflow(workflow, installation))
    runs = [(await client.trigger(workflow, {"name": f"n{i}"})).run_id for i in range(count)]
    claims = _claim_sets(installation, partitions)

    async def pending() -> int:
        return sum([int(await redis.zcard(one)) for one in claims])

    await until(pending, lambda n: n == count, within=30)
    return installation, runs


async def _split(redis: aioredis.Redis, installation: str, partitions: int) -> tuple[int, int]:
    """(claimed and not acked, not claimed) node runs of ``installation``."""
    claims = _claim_sets(installation, partitions)
    visible = sum([int(await redis.zcount(one, 0, 0)) for one in claims])
    return sum([int(await redis.zcard(one)) for one in claims]) - visible, visible


async def test_the_next_batch_is_claimed_while_the_current_one_runs(
    topics: Settings, engine: object, client: RunsClient
) -> None:
    redis = redis_client(topics)
    try:
        partitions = topics.inbox_partitions
        installation, runs = await _pending(client, redis, 6, partitions)
        handler = _Blocked()
        worker = ClaimWorker(client, installation, handler, limit=2, concurrency=2,
                             min_backoff=0.05, max_backoff=0.2)  # fmt: skip
        async with worker:

            async def seen() -> tuple[tuple[int, int], int]:
                return await _split(redis, installation, partitions), len(handler.started)

            # Two acked and running (out of the set), two more claimed and held.
            await until(seen, lambda s: s == ((2, 2), 2), within=30)
            # Stopping claims no more, but runs what it holds.
            worker.stop_soon()
            handler.release.set()
        assert (worker.completed, len(handler.started)) == (4, 4)
        assert await _split(redis, installation, partitions) == (0, 2)
        async with ClaimWorker(client, installation, handler, min_backoff=0.05) as second:
            await until(lambda: _completed(second), lambda n: n == 2, within=30)

        async def results() -> list[str | None]:
            return [(await client.get_run(run_id)).result for run_id in runs]

        await until(results, lambda found: found == ["SUCCESS"] * 6, within=30)
    finally:
        await redis.aclose()


async def _completed(worker: ClaimWorker) -> int:
    return worker.completed


async def test_a_held_node_run_past_its_timeout_is_dropped_unacked(
    topics: Settings, engine: object, client: RunsClient
) -> None:
    redis = redis_client(topics)
    try:
        partitions = topics.inbox_partitions
        installation, _ = await _pending(client, redis, 2, partitions)
        handler = _Blocked()
        worker = ClaimWorker(client, installation, handler, limit=1, concurrency=1,
                             visibility_timeout_ms=1000, min_backoff=0.05)  # fmt: skip
        claims = _claim_sets(installation, partitions)
        async with worker:
            split = functools.partial(_split, redis, installation, partitions)
            await until(split, lambda s: s == (1, 0), within=30)
            found: list[Any] = []
            for one in claims:
                found += await redis.zrange(one, 0, -1, withscores=True)
            [(member, visible_at)] = found
            held = member.decode()

            async def now_ms() -> float:
                return time.time() * 1000

            # The held one's timeout passes while the only handler is busy.
            await until(now_ms, lambda now: now > visible_at + 200, within=30)
            handler.release.set()
            await until(lambda: _completed(worker), lambda n: n == 2, within=30)
        assert worker.expired >= 1  # dropped unacked, claimed again, then run
        assert held in handler.started
    finally:
        await redis.aclose()
