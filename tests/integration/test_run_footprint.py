"""What a completed chain run (trigger → CONDITION → KAFKA → KAFKA, the benchmark's
``chain``) leaves in Redis, through the real engine: only its hash, its logs and its
event list; the list expiring and packed (each entry gives back the topic's exact
JSON), the logs packed; its own keys under the 4 KB per completed run of issue 16 (``MEMORY USAGE``,
a size, not a time). ``python -m benchmarks.redis_footprint`` has the whole table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from switchyard.engine.store import event_record, keys
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas import NodeRunUpdated, encode, node_run_id
from switchyard.schemas.settings import Settings
from tests.helpers import until
from tests.integration.engine_support import Driver, consume

pytestmark = pytest.mark.integration

# Issue 16's bound for everything one completed chain run keeps in Redis.
RUN_BYTES_BOUND = 4096


def _chain(identifier: str) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
                "properties": {"n": {"type": "number"}}, "required": ["n"]}}},
            {"identifier": "check", "config": {"type": "CONDITION", "outlets": [
                {"identifier": "go", "expression": ".outputs.trigger.n >= 0"}]}},
            {"identifier": "first", "config": {"type": "KAFKA", "payload": {
                "n": "{{ .outputs.trigger.n }}"}}},
            {"identifier": "second", "config": {"type": "KAFKA", "payload": {
                "previous": "{{ .outputs.first.ok }}"}}},
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "check"},
            {"sourceIdentifier": "check", "targetIdentifier": "first",
             "sourceOutletIdentifier": "go"},
            {"sourceIdentifier": "first", "targetIdentifier": "second"},
        ],
    }  # fmt: skip


def _done(run_id: str, node: str) -> bytes:
    return encode(NodeRunUpdated.model_validate({
        "runId": run_id, "nodeRunId": node_run_id(run_id, node), "status": "COMPLETED",
        "result": "SUCCESS", "output": {"ok": True}, "sentAt": datetime.now(UTC),
    }))  # fmt: skip


async def _complete_a_chain_run(driver: Driver) -> str:
    workflow = f"footprint-{uuid.uuid4().hex[:6]}"
    await driver.define(_chain(workflow))
    run_id = await driver.trigger(workflow, {"n": 1})
    for node in ("first", "second"):
        await driver.wait(run_id, lambda s, n=node: any(
            nr.node == n and nr.status == "IN_PROGRESS" for nr in s.node_runs))  # fmt: skip
        await driver.send(run_id, _done(run_id, node))
    state = await driver.wait(run_id, lambda s: s.status == "COMPLETED")
    assert state.result == "SUCCESS"
    return run_id


async def _own_keys(redis: aioredis.Redis, run_id: str) -> set[str]:
    # The run's keys under any partition's tag: one outside its own tag counts too.
    return {k.decode() async for k in redis.scan_iter(match=f"sy:run:*:{run_id}*", count=1000)}


@pytest.mark.usefixtures("engine")
async def test_a_completed_chain_run_keeps_its_hash_logs_and_an_expiring_packed_event_list(
    driver: Driver, redis: aioredis.Redis, topics: Settings
) -> None:
    run_id = await _complete_a_chain_run(driver)
    tag = keys.tag_of(run_id, topics.inbox_partitions)
    own = {keys.run(run_id, tag), keys.logs(run_id, tag), keys.run_events(run_id, tag)}
    # The outbox of the last steps goes once the relay has published them.
    await until(lambda: _own_keys(redis, run_id), lambda found: found == own)

    events = keys.run_events(run_id, tag)
    assert 0 < await redis.ttl(events) <= keys.RUN_EVENTS_TTL_SECONDS
    state = await driver.state(run_id)
    assert state is not None
    stored: Any = await redis.lrange(events, 0, -1)
    assert len(stored) == state.seq
    assert all(raw.startswith(b"[") for raw in stored)  # packed: no names, no run id
    # Given back byte for byte as the run-events topic carries them.
    records = await consume(
        topics, driver.registry.run_events.name, state.seq, lambda r: r.key == run_id.encode()
    )
    topic = sorted((r.value for r in records), key=lambda v: orjson.loads(v)["seq"])
    assert [event_record.unpack(run_id, raw).json for raw in stored] == topic

    logs: Any = await redis.lrange(keys.logs(run_id, tag), 0, -1)
    assert logs
    assert all(raw.startswith(b"[") for raw in logs)  # packed: no field names
    sizes = {key: int(await redis.memory_usage(key, samples=0) or 0) for key in own}
    assert sum(sizes.values()) <= RUN_BYTES_BOUND, sizes


async def _last_entry(redis: aioredis.Redis, stream: str) -> str:
    last: Any = await redis.xrevrange(stream, count=1)
    return str(last[0][0].decode()) if last else "0-0"


async def _entries_of(
    redis: aioredis.Redis, stream: str, start: str, run_id: str
) -> list[dict[bytes, bytes]]:
    entries: Any = await redis.xrange(stream, min=f"({start}")
    return [fields for _, fields in entries if fields[b"r"] == run_id.encode()]


@pytest.mark.usefixtures("engine")
async def test_the_runs_streams_hold_each_event_of_the_run_once_packed_an_entry_a_step(
    driver: Driver, redis: aioredis.Redis, topics: Settings
) -> None:
    partitions = topics.inbox_partitions
    streams = [keys.runs_events(partition_tag(p, partitions)) for p in range(partitions)]
    starts = {stream: await _last_entry(redis, stream) for stream in streams}
    run_id = await _complete_a_chain_run(driver)
    state = await driver.state(run_id)
    assert state is not None
    by_stream = {s: await _entries_of(redis, s, starts[s], run_id) for s in streams}
    own = keys.runs_events(keys.tag_of(run_id, partitions))
    # Only the run's partition's stream has its entries: a list SSE reads each once.
    assert {stream for stream, found in by_stream.items() if found} == {own}
    mine = by_stream[own]
    assert len(mine) == state.step  # one entry per step (3 for the chain's 10 events)
    assert all(fields[b"e"].startswith(b"[[") for fields in mine)  # each event packed
    seqs = [e.seq for fields in mine for e in event_record.unpack_step(run_id, fields[b"e"])]
    assert seqs == list(range(1, state.seq + 1))
