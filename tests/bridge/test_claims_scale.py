"""A claim reads a page of what is pending, never all of it: with 100,000 pending node
runs, the commands its script issues (seen by ``MONITOR``) are bounded by the limit.
Excluded node runs are passed over page by page; a record's stored view is served
without reading its run."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

from switchyard.engine.store import keys
from switchyard.engine.store.claims import ClaimStore
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas.settings import Settings
from tests.bridge.support import Api, new_installation

PENDING = 100_000
LIMIT = 50


@contextlib.asynccontextmanager
async def _pending(
    redis: aioredis.Redis,
    installation: str,
    count: int,
    records: int,
    record: Callable[[int], dict[str, str]],
    partition: str,
) -> AsyncIterator[list[str]]:
    """``count`` node runs pending (score 0) for ``installation`` in the partition of
    hash tag ``partition``, one ZADD; claim records for the first ``records`` of them
    (by id, the order a claim reads them)."""
    tag = uuid.uuid4().hex[:6]
    ids = [f"wfnr_{tag}{i:011d}" for i in range(count)]
    claims = keys.claims(installation, partition)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zadd(claims, dict.fromkeys(ids, 0))
            for i in range(records):
                fields = [part for pair in record(i).items() for part in pair]
                pipe.execute_command("HSET", keys.claim(ids[i], partition), *fields)
            await pipe.execute()
        yield ids
    finally:
        await redis.unlink(claims, *(keys.claim(ids[i], partition) for i in range(records)))


def _tag(settings: Settings) -> str:
    """A partition's tag (the last one: a claim starts one further each call, so any
    partition holding all the pending ones must be found, not only the first)."""
    partitions = settings.inbox_partitions
    return partition_tag(partitions - 1, partitions)


def _record(installation: str) -> Callable[[int], dict[str, str]]:
    def record(i: int) -> dict[str, str]:
        return {"run": f"wfr_gone{i}", "installation": installation, "config": '{"n": 1}'}

    return record


async def _watched(
    redis: aioredis.Redis, tags: tuple[str, ...], call: Awaitable[Any]
) -> list[tuple[str, list[str]]]:
    """The commands naming one of ``tags`` that Redis ran while ``call`` ran, each with
    who sent it: ``lua`` for a script's, else the client's (MONITOR sees both)."""
    seen: list[tuple[str, list[str]]] = []
    end = f"end-{uuid.uuid4().hex}"
    async with redis.monitor() as monitor:

        async def listen() -> None:
            while True:
                info = await monitor.next_command()
                command = str(info["command"])
                if end in command:
                    return
                if any(tag in command for tag in tags):
                    seen.append((info["client_type"], command.split(" ")))

        listening = asyncio.create_task(listen())
        await redis.ping()
        await call
        await redis.echo(end)
        await asyncio.wait_for(listening, 60)
    return seen


async def test_a_claim_with_100000_pending_reads_only_a_page(
    redis: aioredis.Redis, settings: Settings
) -> None:
    installation, tag = new_installation(), _tag(settings)
    async with _pending(redis, installation, PENDING, 4 * LIMIT, _record(installation), tag) as ids:
        now_ms = int(time.time() * 1000)
        claim = ClaimStore(redis, settings.inbox_partitions).claim(
            installation, now_ms=now_ms, limit=LIMIT, visibility_ms=60_000
        )
        batches: list[Any] = []

        async def claimed() -> None:
            batches.append(await claim)

        watched = await _watched(redis, (ids[0][:11], installation), claimed())
        [batch] = batches
        assert [r.node_run_id for r in batch.records] == ids[:LIMIT]
        # Before the script, one pipelined peek of a single member per partition finds
        # the partitions with something due: bounded by the partition count, not by
        # what is pending.
        sent = [c for source, c in watched if source != "lua"]
        peeks = [c for c in sent if c[0].strip('"').upper() != "EVALSHA"]
        partitions = settings.inbox_partitions
        assert [c[0].strip('"').upper() for c in peeks] == ["ZRANGEBYSCORE"] * partitions
        assert all([arg.strip('"') for arg in c[-3:]] == ["LIMIT", "0", "1"] for c in peeks)
        commands = [c for source, c in watched if source == "lua"]
        names = [command[0].strip('"').upper() for command in commands]
        # Behaviour, not time: the script read one page of LIMIT members, opened LIMIT
        # records and moved LIMIT members; nothing else of the 100,000 was touched.
        ranges = [c for c in commands if c[0].strip('"').upper() == "ZRANGEBYSCORE"]
        assert len(ranges) == 1
        assert [arg.strip('"') for arg in ranges[0][-3:]] == ["LIMIT", "0", str(LIMIT)]
        assert names.count("HMGET") == LIMIT
        assert names.count("ZADD") == LIMIT
        assert names.count("ZREM") == 0
        claims = keys.claims(installation, tag)
        assert await redis.zcard(claims) == PENDING
        assert await redis.zcount(claims, 0, 0) == PENDING - LIMIT


async def test_excluded_node_runs_are_passed_over_page_by_page(
    redis: aioredis.Redis, settings: Settings
) -> None:
    installation, tag = new_installation(), _tag(settings)
    saturated = f"uid-{uuid.uuid4().hex}"

    def record(i: int) -> dict[str, str]:
        # The first 130 by id belong to an excluded node uid, then two by node run id.
        return {**_record(installation)(i), "uid": saturated if i < 130 else "other"}

    async with _pending(redis, installation, 300, 300, record, tag) as ids:
        now_ms = int(time.time() * 1000)
        store = ClaimStore(redis, settings.inbox_partitions)
        batch = await store.claim(installation, now_ms=now_ms, limit=10, visibility_ms=60_000,
                                  exclude=[saturated, ids[130], ids[131]])  # fmt: skip
        assert [r.node_run_id for r in batch.records] == ids[132:142]
        assert (
            await redis.zcount(keys.claims(installation, tag), 0, 0) == 290
        )  # the excluded stay visible


async def test_a_stored_view_is_served_without_reading_the_run(api: Api) -> None:
    """The engine may store the item's fixed part with the record: then no run state
    is read (this run does not even exist)."""
    redis = api.ctx.redis
    installation = new_installation()
    view = {"identifier": "wfnr_x", "node": {"identifier": "act"}, "status": "IN_PROGRESS",
            "output": {}, "nodeRunLogs": [], "nodeUid": "uid-act"}  # fmt: skip

    def record(i: int) -> dict[str, str]:
        config = {"type": "INTEGRATION_ACTION", "installationId": installation}
        return {**_record(installation)(i), "config": orjson.dumps(config).decode(),
                "uid": "uid-act", "view": orjson.dumps(view).decode()}  # fmt: skip

    partitions = api.ctx.runs.partitions
    tag = partition_tag(partitions - 1, partitions)
    async with _pending(redis, installation, 1, 1, record, tag) as ids:
        body = {"installationId": installation, "limit": 5}
        response = await api.call("POST", "/v1/workflows/runs/claim-pending", "machine", json=body)
        assert response.status_code == 200, response.text
        [item] = response.json()["nodeRuns"]
        config = {"type": "INTEGRATION_ACTION", "installationId": installation}
        assert item["identifier"] == ids[0]
        assert item["node"] == {"identifier": "act", "config": config}
        assert item["config"] == config
        assert (item["nodeUid"], item["installationId"]) == ("uid-act", installation)
        assert item["workflowRun"] == {"identifier": "wfr_gone0"}
        assert item["pendingExecution"] is True
        run = keys.run("wfr_gone0", keys.tag_of("wfr_gone0", partitions))
        assert await redis.exists(run, keys.run("wfr_gone0", tag)) == 0
