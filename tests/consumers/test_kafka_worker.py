"""The Kafka worker against the real broker: dedup by node-run id, filters, draining."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from switchyard.consumers import KafkaWorker, WorkContext
from switchyard.schemas import node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.integration.engine_support import consume, new_run_id

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
    run_id = new_run_id()
    for node in ("work", "work", "other"):  # a redelivered request, and a filtered one
        await producer.send_and_wait(registry.node_run_requests.name, run_id,
                                     _request(run_id, node, workflow))  # fmt: skip
    started, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def slow(ctx: WorkContext) -> dict[str, str]:
        calls.append(ctx.node_identifier)
        started.set()
        await release.wait()
        return {"done": ctx.node_run_id}

    worker = KafkaWorker(topics, slow, workflows=[workflow], node_identifiers=["work"])
    await worker.start()
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 30)
    worker.stop_soon()  # in flight: the handler must still finish and report
    release.set()
    await running
    await worker.stop()
    assert calls == ["work"]
    [update] = await consume(topics, registry.inbox.name, 1, lambda r: r.key == run_id.encode())
    body = orjson.loads(update.value)
    assert (body["status"], body["result"]) == ("COMPLETED", "SUCCESS")
    assert body["output"] == {"done": node_run_id(run_id, "work")}
