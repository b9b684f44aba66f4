"""Cancel over HTTP while a synchronized webhook's call is in flight: the run shows
CANCELLING (waiting on that call), the call finishes, and the run ends
``result: CANCELLED`` without starting the next node. The bridge app, the real
engine and webhook executor over Kafka and Redis, a receiver on loopback that holds
the call until the test releases it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from switchyard.consumers.webhook import WebhookService
from switchyard.schemas.settings import Settings
from tests.bridge.support import Api, node_run, trigger_node
from tests.helpers import until
from tests.slow_receiver import SlowReceiver, slow_receiver, webhook_executor

pytestmark = pytest.mark.integration


@pytest.fixture
async def executor(bridge_settings: Settings) -> AsyncIterator[WebhookService]:
    async with webhook_executor(bridge_settings) as service:
        yield service


@pytest.fixture
def receiver() -> Iterator[SlowReceiver]:
    with slow_receiver() as found:
        yield found


def _workflow(identifier: str, url: str) -> dict[str, Any]:
    """trigger → call (a synchronized WEBHOOK) → after (KAFKA)."""
    return {
        "identifier": identifier, "allowAnyoneToViewRuns": True,
        "nodes": [
            trigger_node(),
            {"identifier": "call", "config": {"type": "WEBHOOK", "url": url,
                                              "synchronized": True}},
            {"identifier": "after", "config": {"type": "KAFKA", "payload": {}}},
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "call"},
            {"sourceIdentifier": "call", "targetIdentifier": "after"},
        ],
    }  # fmt: skip


def _nodes(run: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(nr["node"]["identifier"], nr["status"], nr["result"]) for nr in run["nodeRuns"]]


@pytest.mark.usefixtures("engine", "executor")
async def test_cancel_during_a_sync_webhook_shows_cancelling_then_ends_cancelled(
    api: Api, wf_id: str, receiver: SlowReceiver
) -> None:
    await api.define(_workflow(wf_id, f"{receiver.url}/deploy"))
    run_id = (await api.trigger(wf_id, {"name": "ada"}))["identifier"]
    calling = await until(lambda: api.run(run_id), lambda r: len(r["nodeRuns"]) == 2)
    call = node_run(calling, "call")["identifier"]
    # The call is at the receiver, held there, before the cancel is asked for.
    await until(lambda: _keys(receiver), lambda keys: call in keys, within=30)

    cancel = await api.call("POST", f"/v1/workflows/runs/{run_id}/cancel")
    assert cancel.status_code == 200, cancel.text
    cancelling = await until(lambda: api.run(run_id), lambda r: r["status"] == "CANCELLING")
    assert cancelling["result"] is None
    assert [(w["nodeRun"], w["kind"]) for w in cancelling["waitingOn"]] == [(call, "http")]
    assert node_run(cancelling, "call")["status"] == "IN_PROGRESS"

    receiver.release.set()
    done = await until(lambda: api.run(run_id), lambda r: r["status"] == "COMPLETED", within=30)
    assert done["result"] == "CANCELLED"
    # The call finished and counts; the node after it never started.
    assert _nodes(done) == [("trigger", "COMPLETED", "SUCCESS"), ("call", "COMPLETED", "SUCCESS")]
    assert node_run(done, "call")["output"] == {"response": {"status": 200, "data": {"late": True}}}
    assert done["waitingOn"] == []
    assert await _keys(receiver) == [call]  # called once


async def _keys(receiver: SlowReceiver) -> list[str | None]:
    return [c["idempotency_key"] for c in receiver.calls]
