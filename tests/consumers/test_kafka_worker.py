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
from tests.helpers import until
from tests.integration.engine_support import new_run_id, read_all

pytestmark = pytest.mark.integration


def _request(run_id: str, node: str, workflow: str, attempt: int = 1) -> bytes:
    nr = node_run_id(run_id, node, attempt)
    return orjson.dumps({"payload": {"node": node}, "context": {
        "workflowIdentifier": workflow, "workflowRunId": run_id, "nodeRunId": nr,
        "nodeIdentifier": node, "runId": nr}})  # fmt: skip


async def test_duplicates_and_other_nodes_are_skipped_and_a_stop_drains(
    topics: Settings, producer: EventProducer
) -> None:
    """The topic holds other tests' requests too, so progress is told by a marker: a
    new attempt sent after the repeats, on their partition (same key), is handled only
    after every record before it was taken, and the repeats were skipped by then."""
    registry = TopicRegistry.from_settings(topics)
    workflow = f"w-{uuid.uuid4().hex[:6]}"
    run_id, later = new_run_id(), new_run_id()
    first = node_run_id(run_id, "work")

    async def send(run: str, node: str, attempt: int = 1) -> None:
        await producer.send_and_wait(registry.node_run_requests.name, run,
                                     _request(run, node, workflow, attempt))  # fmt: skip

    # A repeat while the first runs, a filtered node, then the marker (attempt 2).
    for node in ("work", "work", "other"):
        await send(run_id, node)
    await send(run_id, "work", attempt=2)
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
    await _calls_reach(calls, node_run_id(run_id, "work", 2))
    await until(lambda: asyncio.sleep(0, worker.completed), lambda n: n == 2, within=30)
    await send(run_id, "work")  # a repeat after the first finished, then another marker
    await send(run_id, "work", attempt=3)
    await _calls_reach(calls, node_run_id(run_id, "work", 3))
    # The handler ran once per node run: never for a repeat, nor for the other node.
    assert calls == [first, node_run_id(run_id, "work", 2), node_run_id(run_id, "work", 3)]

    started.clear()
    release.clear()
    await send(later, "work")
    await asyncio.wait_for(started.wait(), 30)
    worker.stop_soon()  # in flight: the handler must still finish and report
    release.set()
    await running
    await worker.stop()
    assert calls[-1] == node_run_id(later, "work")
    assert worker.completed == len(calls) == 4
    # One report per node run on the inbox, the repeats' included.
    updates = [r for r in await read_all(topics, registry.inbox.name)
               if r.key in (run_id.encode(), later.encode())]  # fmt: skip
    bodies = [orjson.loads(r.value) for r in updates]
    assert sorted(b["nodeRunId"] for b in bodies) == sorted(calls)
    for body in bodies:
        assert (body["status"], body["result"]) == ("COMPLETED", "SUCCESS")
        assert body["output"] == {"done": body["nodeRunId"]}


async def _calls_reach(calls: list[str], marker: str) -> None:
    """Wait until the handler ran for ``marker``; fails with the calls seen."""
    await until(lambda: asyncio.sleep(0, list(calls)), lambda seen: marker in seen, within=30)
