"""The Kafka worker against the real broker: dedup by node-run id, filters, draining."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest

from switchyard.consumers import KafkaWorker, WorkContext
from switchyard.schemas import node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.helpers import until
from tests.integration.engine_support import new_run_id, read_all

pytestmark = pytest.mark.integration


def _request(run_id: str, node: str, workflow: str) -> bytes:
    nr = node_run_id(run_id, node)
    return orjson.dumps({"payload": {"node": node}, "context": {
        "workflowIdentifier": workflow, "workflowRunId": run_id, "nodeRunId": nr,
        "nodeIdentifier": node, "runId": nr}})  # fmt: skip


async def test_duplicates_and_other_nodes_are_skipped_and_a_stop_drains(
    topics: Settings, producer: EventProducer
) -> None:
    registry = TopicRegistry.from_settings(topics)
    workflow = f"w-{uuid.uuid4().hex[:6]}"
    run_id, later = new_run_id(), new_run_id()

    async def send(run: str, node: str) -> None:
        await producer.send_and_wait(registry.node_run_requests.name, run,
                                     _request(run, node, workflow))  # fmt: skip

    for node in ("work", "work", "other"):  # a redelivered request, and a filtered one
        await send(run_id, node)
    started, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []  # node-run ids, one per handler run

    async def slow(ctx: WorkContext) -> dict[str, str]:
        calls.append(ctx.node_run_id)
        started.set()
        await release.wait()
        return {"done": ctx.node_run_id}

    worker = KafkaWorker(topics, slow, workflows=[workflow], node_identifiers=["work"])
    await worker.start()
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 30)
    release.set()
    # Every record taken off the topic, the repeat among them: it ran no second time.
    await until(lambda: _counts(worker), lambda n: n == (3, 1), within=30)
    await send(run_id, "work")  # redelivered after the first finished
    await until(lambda: _counts(worker), lambda n: n == (4, 1), within=30)
    assert calls == [node_run_id(run_id, "work")]

    started.clear()
    release.clear()
    await send(later, "work")
    await asyncio.wait_for(started.wait(), 30)
    worker.stop_soon()  # in flight: the handler must still finish and report
    release.set()
    await running
    await worker.stop()
    assert calls == [node_run_id(run_id, "work"), node_run_id(later, "work")]
    assert worker.completed == 2
    # One report per node run on the inbox, the repeats' included.
    updates = [r for r in await read_all(topics, registry.inbox.name)
               if r.key in (run_id.encode(), later.encode())]  # fmt: skip
    bodies = [orjson.loads(r.value) for r in updates]
    assert sorted(b["nodeRunId"] for b in bodies) == sorted(calls)
    for body in bodies:
        assert (body["status"], body["result"]) == ("COMPLETED", "SUCCESS")
        assert body["output"] == {"done": body["nodeRunId"]}


async def _counts(worker: KafkaWorker[Any]) -> tuple[int, int]:
    """Records taken off the topic, and handlers run to an update."""
    return worker.handled, worker.completed
