"""A call of the apply script repeated after its reply was lost (redis-py retries a
command when the connection drops, and a Redis Cluster client after a failover or a
race of its first connections) reports the plan applied again, and writes nothing
twice; a true redelivery, decided again from the stored state, is still a 0."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from switchyard.engine.store import keys
from switchyard.engine.store.plan import ApplyPlan, OutboxMessage
from switchyard.engine.store.runs import RunStore
from switchyard.schemas.settings import Settings
from switchyard.topics.registry import TopicRegistry
from tests.integration.engine_support import new_run_id

pytestmark = pytest.mark.integration


def _plan(run_id: str, tag: str, step: str, state: str, *, outbox: bool) -> ApplyPlan:
    commands = [
        ["HSET", keys.run(run_id, tag), "state", state],
        ["HINCRBY", keys.node_runs_in_flight(tag), f"test-{run_id}", "1"],
    ]
    messages = [OutboxMessage("sy.test", run_id, state.encode())] if outbox else []
    return ApplyPlan(run_id, 7, step, partition=2, tag=tag, commands=commands, outbox=messages)


@pytest.mark.parametrize("outbox", [True, False])
async def test_a_repeated_call_is_applied_once_and_reported_applied_twice(
    topics: Settings, redis: aioredis.Redis, outbox: bool
) -> None:
    partitions = TopicRegistry.from_settings(topics).inbox.partitions
    store = RunStore(redis, partitions)
    run_id = new_run_id()
    tag = keys.tag_of(run_id, partitions)
    plan = _plan(run_id, tag, "3:7", '{"step": 3}', outbox=outbox)
    counter = (keys.node_runs_in_flight(tag), f"test-{run_id}")
    try:
        assert await store.apply([plan]) == [1]
        assert await store.apply([plan]) == [1]  # the same call again: its retry
        assert await redis.hget(*counter) == b"1"  # written once
        if outbox:
            assert await redis.hkeys(keys.outbox(run_id, tag)) == [b"3:7"]
        # The engine decides a redelivered record from the state stored: another step.
        again = _plan(run_id, tag, "4:7", '{"step": 4}', outbox=outbox)
        assert await store.apply([again]) == [0]
        assert await redis.hget(*counter) == b"1"
        assert await redis.hget(keys.run(run_id, tag), "state") == b'{"step": 3}'
        # A plan that writes no state (a move, a dead letter of an unreadable record)
        # can't tell its retry from a redelivery: it stays a 0, and its leftover is
        # published once, by the recovery, not again by the redelivery.
        stateless = ApplyPlan(run_id, 9, "move:2:9", partition=2, tag=tag,
                              outbox=[OutboxMessage("sy.test", run_id, b"moved")])  # fmt: skip
        assert await store.apply([stateless]) == [1]
        assert await store.apply([stateless]) == [0]
    finally:
        await redis.delete(keys.run(run_id, tag), keys.outbox(run_id, tag))
        await redis.srem(keys.outbox_pending(tag), run_id)
        await redis.hdel(*counter)
