"""The engine's apply step on a Redis Cluster: a batch is one script call per inbox
partition it touches (each in that partition's slot, on its master), however many runs
of the partition it holds, and each run's own offset still decides its plan. On one
Redis node the whole batch, every partition of it, is one call."""

from __future__ import annotations

import uuid

import pytest
import redis
import redis.asyncio as aioredis

from switchyard.engine.store import keys
from switchyard.engine.store.plan import ApplyPlan
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.slots import partition_tag
from switchyard.topics.partitioning import partition_of
from tests.helpers_cluster import RedisServer, redis_pair

pytestmark = pytest.mark.integration

PARTITIONS = 12


def _script_calls(nodes: list[RedisServer]) -> int:
    """EVAL and EVALSHA calls the masters have served so far."""
    total = 0
    for node in nodes:
        direct = redis.Redis(port=node.port)
        try:
            stats = direct.info("commandstats")
        finally:
            direct.close()
        total += sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
                     for name in ("eval", "evalsha"))  # fmt: skip
    return total


def _plans(run_ids: list[str], offset: int, step: int | None = None) -> list[ApplyPlan]:
    """A plan per run at ``offset``, storing state ``step`` (default: the offset)."""
    step = offset if step is None else step
    plans = []
    for run_id in run_ids:
        partition = partition_of(run_id, PARTITIONS)
        tag = partition_tag(partition, PARTITIONS)
        state = ["HSET", keys.run(run_id, tag), "state", f'{{"step": {step}}}']
        plans.append(ApplyPlan(run_id, offset, f"{step}:{offset}", partition=partition,
                               tag=tag, commands=[state]))  # fmt: skip
    return plans


def _runs(count: int) -> list[str]:
    return [f"wfr_{uuid.uuid4().hex[:16]}" for _ in range(count)]


async def test_a_batch_is_one_script_call_per_partition_it_touches(
    redis: aioredis.Redis, cluster_nodes: list[RedisServer]
) -> None:
    store = RunStore(redis, PARTITIONS)
    # Every partition once first: the script is then loaded on every master. (The
    # client's first calls race its connections and some are sent twice: the repeat
    # says 1 as well, test_apply_retry.py.)
    by_partition = {partition_of(r, PARTITIONS): r for r in _runs(400)}
    assert len(by_partition) == PARTITIONS
    assert await store.apply(_plans(list(by_partition.values()), 1)) == [1] * PARTITIONS

    batch = _runs(40)
    touched = {partition_of(r, PARTITIONS) for r in batch}
    before = _script_calls(cluster_nodes)
    assert await store.apply(_plans(batch, 5)) == [1] * len(batch)
    assert _script_calls(cluster_nodes) - before == len(touched)

    # Redelivered (decided again from the stored state: a later step): every plan of
    # the batch is refused by its own run's offset, in as few calls; a later offset of
    # half of them applies, the rest stays refused.
    before = _script_calls(cluster_nodes)
    assert await store.apply(_plans(batch, 5, step=9)) == [0] * len(batch)
    half = batch[: len(batch) // 2]
    mixed = _plans(half, 6) + _plans(batch[len(half) :], 5, step=9)
    assert await store.apply(mixed) == [1] * len(half) + [0] * (len(batch) - len(half))
    assert _script_calls(cluster_nodes) - before == len(touched) + len(
        {partition_of(r, PARTITIONS) for r in batch}
    )
    for run_id in half:
        key = keys.run(run_id, keys.tag_of(run_id, PARTITIONS))
        assert await redis.hget(key, "offset") == b"6"


async def test_on_one_redis_node_a_batch_is_one_script_call() -> None:
    with redis_pair() as (master, _):
        client = aioredis.Redis.from_url(master.url)
        try:
            store = RunStore(client, PARTITIONS)
            assert not store.per_partition
            by_partition = {partition_of(r, PARTITIONS): r for r in _runs(400)}
            assert await store.apply(_plans(list(by_partition.values()), 1)) == [1] * PARTITIONS
            batch = _runs(40)
            assert len({partition_of(r, PARTITIONS) for r in batch}) > 1
            before = _script_calls([master])
            assert await store.apply(_plans(batch, 5)) == [1] * len(batch)
            assert _script_calls([master]) - before == 1
            # Its outbox steps are forgotten in one call too, every partition's set kept.
            steps = [(partition_tag(partition_of(r, PARTITIONS), PARTITIONS), r, "5:5")
                     for r in batch]  # fmt: skip
            for tag, run_id, step in steps:
                await client.hset(keys.outbox(run_id, tag), step, "[]")
                await client.sadd(keys.outbox_pending(tag), run_id)
            await store.clear_outbox(steps[:1])  # the script loaded first (NOSCRIPT once)
            before = _script_calls([master])
            await store.clear_outbox(steps[1:])
            assert _script_calls([master]) - before == 1
            for tag, run_id, _ in steps:
                assert not await client.exists(keys.outbox(run_id, tag))
                assert not await client.sismember(keys.outbox_pending(tag), run_id)
        finally:
            await client.aclose()
