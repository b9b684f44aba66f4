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
) -> AsyncIterator[list[str]]:
    """``count`` node runs pending (score 0) for ``installation``, one ZADD; claim
    records for the first ``records`` of them (by id, the order a claim reads them)."""
    tag = uuid.uuid4().hex[:6]
    ids = [f"wfnr_{tag}{i:011d}" for i in range(count)]
    claims = keys.claims(installation)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zadd(claims, dict.fromkeys(ids, 0))
            for i in range(records):
                fields = [part for pair in record(i).items() for part in pair]
                pipe.execute_command("HSET", keys.claim(ids[i]), *fields)
            await pipe.execute()
        yield ids
    finally:
        await redis.unlink(claims, *(keys.claim(ids[i]) for i in range(records)))


def _record(installation: str) -> Callable[[int], dict[str, str]]:
    def record(i: int) -> dict[str, str]:
        return {"run": f"wfr_gone{i}", "installation": installation, "config": '{"n": 1}'}

    return record


async def _watched(
    redis: aioredis.Redis, tags: tuple[str, ...], call: Awaitable[Any]
) -> list[list[str]]:
    """The commands naming one of ``tags`` that Redis ran while ``call`` ran (MONITOR
    sees the ones a script issues too)."""
    seen: list[list[str]] = []
    end = f"end-{uuid.uuid4().hex}"
    async with redis.monitor() as monitor:

        async def listen() -> None:
            while True:
                command = str((await monitor.next_command())["command"])
                if end in command:
                    return
                if any(tag in command for tag in tags):
                    seen.append(command.split(" "))

        listening = asyncio.create_task(listen())
        await redis.ping()
        await call
        await redis.echo(end)
        await asyncio.wait_for(listening, 60)
    return seen


async def test_a_claim_with_100000_pending_reads_only_a_page(redis: aioredis.Redis) -> None:
    installation = new_installation()
    async with _pending(redis, installation, PENDING, 4 * LIMIT, _record(installation)) as ids:
        now_ms = int(time.time() * 1000)
        claim = ClaimStore(redis).claim(
            installation, now_ms=now_ms, limit=LIMIT, visibility_ms=60_000
        )
        batches: list[Any] = []

        async def claimed() -> None:
            batches.append(await claim)

        commands = await _watched(redis, (ids[0][:11], installation), claimed())
        [batch] = batches
        assert [r.node_run_id for r in batch.records] == ids[:LIMIT]
        commands = [c for c in commands if c[0].strip('"').upper() != "EVALSHA"]
        names = [command[0].strip('"').upper() for command in commands]
        # Behaviour, not time: the script read one page of LIMIT members, opened LIMIT
        # records and moved LIMIT members; nothing else of the 100,000 was touched.
        ranges = [c for c in commands if c[0].strip('"').upper() == "ZRANGEBYSCORE"]
        assert len(ranges) == 1
        assert [arg.strip('"') for arg in ranges[0][-3:]] == ["LIMIT", "0", str(LIMIT)]
        assert names.count("HMGET") == LIMIT
        assert names.count("ZADD") == LIMIT
        assert names.count("ZREM") == 0
        claims = keys.claims(installation)
        assert await redis.zcard(claims) == PENDING
        assert await redis.zcount(claims, 0, 0) == PENDING - LIMIT


async def test_excluded_node_runs_are_passed_over_page_by_page(redis: aioredis.Redis) -> None:
    installation = new_installation()
    saturated = f"uid-{uuid.uuid4().hex}"

    def record(i: int) -> dict[str, str]:
        # The first 130 by id belong to an excluded node uid, then two by node run id.
        return {**_record(installation)(i), "uid": saturated if i < 130 else "other"}

    async with _pending(redis, installation, 300, 300, record) as ids:
        now_ms = int(time.time() * 1000)
        store = ClaimStore(redis)
        batch = await store.claim(installation, now_ms=now_ms, limit=10, visibility_ms=60_000,
                                  exclude=[saturated, ids[130], ids[131]])  # fmt: skip
        assert [r.node_run_id for r in batch.records] == ids[132:142]
        assert (
            await redis.zcount(keys.claims(installation), 0, 0) == 290
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

    async with _pending(redis, installation, 1, 1, record) as ids:
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
        assert await redis.exists(keys.run("wfr_gone0")) == 0
