"""Run control on a Redis Cluster: a deadline fails a node through the timer service
(its timers per partition, each on its partition's master), a cancel ends a waiting
run, and the retention pruner deletes finished runs from every master, each run by one
script call in its partition's slot and its keys elsewhere by a DEL of their own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from switchyard.consumers import ClaimWorker, RunsClient, WorkContext
from switchyard.engine.retention import RunPruner
from switchyard.engine.store import keys
from switchyard.engine.timers import TimerService
from switchyard.schemas.settings import Settings
from tests.bridge.support import integration_workflow, kafka_workflow, new_installation
from tests.helpers import until

pytestmark = pytest.mark.integration

RUNS = 12


async def _results(client: RunsClient, run_ids: list[str]) -> list[str | None]:
    return [(await client.get_run(run_id)).result for run_id in run_ids]


async def test_a_deadline_fails_runs_of_every_partition_through_the_timer_service(
    topics: Settings, engine: object, timers: TimerService, client: RunsClient
) -> None:
    workflow = kafka_workflow(f"wf-{uuid.uuid4().hex[:10]}")
    workflow["nodes"][1]["config"]["timeoutSeconds"] = 1  # nobody answers
    await client.request("POST", "/v1/workflows", json=workflow)
    run_ids = [(await client.trigger(workflow["identifier"], {"name": f"n{i}"})).run_id
               for i in range(RUNS)]  # fmt: skip
    await until(lambda: _results(client, run_ids), lambda r: r == ["FAILED"] * RUNS, within=60)
    work = [(await client.get_run(r)).node_runs[-1] for r in run_ids]
    assert {nr.output["error"]["message"] for nr in work} == {"timed out after 1 s"}


async def test_a_cancel_ends_a_waiting_run(
    topics: Settings, engine: object, client: RunsClient
) -> None:
    installation, workflow = new_installation(), f"wf-{uuid.uuid4().hex[:10]}"
    await client.request("POST", "/v1/workflows", json=integration_workflow(workflow, installation))
    run_id = (await client.trigger(workflow, {"name": "n0"})).run_id
    await client.cancel(run_id, force=True)
    await until(lambda: _results(client, [run_id]), lambda r: r == ["CANCELLED"], within=30)


async def _done(ctx: WorkContext) -> dict[str, bool]:
    return {"ok": True}


async def test_the_pruner_deletes_finished_runs_from_every_master(
    topics: Settings, engine: object, client: RunsClient, redis: aioredis.Redis
) -> None:
    installation, workflow = new_installation(), f"wf-{uuid.uuid4().hex[:10]}"
    await client.request("POST", "/v1/workflows", json=integration_workflow(workflow, installation))
    run_ids = [(await client.trigger(workflow, {"name": f"n{i}"})).run_id for i in range(RUNS)]
    async with ClaimWorker(client, installation, _done, limit=10, min_backoff=0.05):
        await until(lambda: _results(client, run_ids), lambda r: r == ["SUCCESS"] * RUNS,
                    within=60)  # fmt: skip
    partitions = topics.inbox_partitions
    run_keys = [keys.run(r, keys.tag_of(r, partitions)) for r in run_ids]
    assert sum([await redis.exists(k) for k in run_keys]) == RUNS

    pruning = topics.model_copy(update={"run_retention_days": 1})
    pruner = RunPruner(pruning, redis)
    later = datetime.now(UTC) + timedelta(days=2)
    pruned = 0
    while (counts := await pruner.prune_batch(later)).runs:
        pruned += counts.runs
    assert pruned >= RUNS  # these, and any an earlier test of this cluster finished
    assert sum([await redis.exists(k) for k in run_keys]) == 0
    assert await client.list_runs(workflow_identifiers=[workflow]) == []
