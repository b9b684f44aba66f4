"""The engine and the runs API on a real Redis Cluster (three masters), layout 2.

Runs of every inbox partition complete: triggered through the API, their node runs
claimed, acked and reported by a claim worker, each step one script call in its
partition's slot. The API reads them back from every master: one run, the list
(merged across partitions), a node run by id, and the live streams (one run's, and
the list's, whose cursor has a position per partition). On a cluster a script or an
XREAD whose keys span slots is refused (CROSSSLOT): any such call fails these tests.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import httpx
import orjson
import pytest
import redis

from switchyard.consumers import ClaimWorker, RunsClient, WorkContext
from switchyard.engine.store import keys
from switchyard.schemas.settings import Settings
from switchyard.topics.partitioning import partition_of
from switchyard.topics.registry import TopicRegistry
from tests.bridge.support import integration_workflow, new_installation
from tests.consumers.stack import Api
from tests.helpers import until

pytestmark = pytest.mark.integration

RUNS = 24  # enough that every one of the 12 partitions gets some, most likely


async def _done(ctx: WorkContext) -> dict[str, Any]:
    return {"greeted": ctx.node_run_id}


async def _finished(client: RunsClient, run_ids: list[str]) -> list[str | None]:
    return [(await client.get_run(run_id)).result for run_id in run_ids]


def _masters_holding(url: str, names: list[str]) -> set[str]:
    """The master node ids whose slots hold ``names``."""
    cluster = redis.RedisCluster.from_url(url)
    try:
        # redis-py leaves get_node_from_key untyped.
        return {cast(Any, cluster).get_node_from_key(name).name for name in names}
    finally:
        cluster.close()


async def test_runs_of_every_partition_complete_and_read_back_from_every_master(
    topics: Settings,
    engine: object,
    client: RunsClient,
) -> None:
    installation, workflow = new_installation(), f"wf-{uuid.uuid4().hex[:10]}"
    await client.request("POST", "/v1/workflows", json=integration_workflow(workflow, installation))
    run_ids = [(await client.trigger(workflow, {"name": f"n{i}"})).run_id for i in range(RUNS)]
    partitions = TopicRegistry.from_settings(topics).inbox.partitions
    spread = {partition_of(run_id, partitions) for run_id in run_ids}
    assert len(spread) > 3  # the runs' keys are in several partitions' slots

    async with ClaimWorker(client, installation, _done, limit=10, min_backoff=0.05):
        await until(lambda: _finished(client, run_ids), lambda r: r == ["SUCCESS"] * RUNS,
                    within=60)  # fmt: skip

    run_keys = [keys.run(run_id, keys.tag_of(run_id, partitions)) for run_id in run_ids]
    assert len(_masters_holding(topics.redis_url, run_keys)) == 3  # every master has some

    listed = await client.list_runs(workflow_identifiers=[workflow], limit=100)
    assert sorted(run.identifier for run in listed) == sorted(run_ids)
    created = [run.created_at for run in listed]
    assert created == sorted(created, reverse=True)  # merged newest first
    # Each worker's report (PATCH by node-run id) found its run in its partition.
    for run_id in run_ids:
        act = next(nr for nr in (await client.get_run(run_id)).node_runs
                   if nr.node.identifier == "act")  # fmt: skip
        assert act.output == {"greeted": act.identifier}


async def _sse(http: httpx.AsyncClient, path: str, token: str, count: int) -> list[str]:
    """The first ``count`` ``data:`` lines of an SSE response."""
    found: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with http.stream("GET", path, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                found.append(line[6:])
                if len(found) == count:
                    break
    return found


async def test_the_live_streams_follow_runs_of_every_partition(
    topics: Settings,
    engine: object,
    api: Api,
    client: RunsClient,
) -> None:
    installation, workflow = new_installation(), f"wf-{uuid.uuid4().hex[:10]}"
    await client.request("POST", "/v1/workflows", json=integration_workflow(workflow, installation))
    token = await client.access_token()
    async with httpx.AsyncClient(base_url=api.url) as http:
        # The list stream is opened before the runs exist: it must be woken for each.
        listening = asyncio.create_task(
            _sse(http, f"/v1/workflows/runs/stream?workflowIdentifiers={workflow}", token, RUNS)
        )
        await asyncio.sleep(0.5)
        run_ids = [(await client.trigger(workflow, {"name": f"n{i}"})).run_id for i in range(RUNS)]
        async with ClaimWorker(client, installation, _done, limit=10, min_backoff=0.05):
            first_events = [orjson.loads(data) for data in await asyncio.wait_for(listening, 60)]
            one = await _sse(http, f"/v1/workflows/runs/{run_ids[-1]}/stream", token, 100)
    assert {event["runId"] for event in first_events} <= set(run_ids)
    assert len({event["runId"] for event in first_events}) > 3  # from several partitions
    kinds = [orjson.loads(data)["kind"] for data in one[:-1]]
    assert kinds[0] == "run.created"
    assert kinds[-1] == "run.completed"
