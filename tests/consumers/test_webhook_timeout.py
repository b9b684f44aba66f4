"""A synchronized WEBHOOK's ``timeoutSeconds`` bounds its HTTP call in the executor:
past it the node fails saying so, or with ``onTimeout: continue`` completes with
``{timeout: true}`` and the run goes on. The real engine and webhook executor over
Kafka and Redis, a receiver on loopback that holds the call."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from switchyard.consumers.webhook import WebhookService
from switchyard.schemas.settings import Settings
from tests.integration.engine_support import Driver
from tests.slow_receiver import SlowReceiver, slow_receiver, webhook_executor

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.5


@pytest.fixture
async def executor(topics: Settings) -> AsyncIterator[WebhookService]:
    async with webhook_executor(topics) as service:
        yield service


@pytest.fixture
def receiver() -> Iterator[SlowReceiver]:
    with slow_receiver() as found:
        yield found


def _workflow(url: str, **timeouts: Any) -> dict[str, Any]:
    """trigger → call (a synchronized WEBHOOK to ``url``) → after (KAFKA)."""
    return {"identifier": f"slow-{uuid.uuid4().hex[:6]}", "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "call", "config": {"type": "WEBHOOK", "url": url, "synchronized": True,
                                          "timeoutSeconds": TIMEOUT_S, **timeouts}},
        {"identifier": "after", "config": {"type": "KAFKA", "payload": {}}},
    ], "connections": [
        {"sourceIdentifier": "trigger", "targetIdentifier": "call"},
        {"sourceIdentifier": "call", "targetIdentifier": "after"},
    ]}  # fmt: skip


async def _levels(driver: Driver, run_id: str, node_run: str) -> list[tuple[str, str]]:
    logs = await driver.runs.logs(run_id, [node_run])
    return [(entry.log_level, entry.log) for entry in logs[node_run]]


@pytest.mark.usefixtures("engine", "executor")
async def test_a_call_past_timeout_seconds_fails_the_node_saying_so(
    driver: Driver, receiver: SlowReceiver
) -> None:
    url = f"{receiver.url}/slow"
    definition = _workflow(url)
    await driver.define(definition)
    run_id = await driver.trigger(definition["identifier"], {})
    state = await driver.wait(run_id, lambda s: s.status == "COMPLETED", within=60)
    assert state.result == "FAILED"
    call = state.node_run_of("call")
    assert call is not None
    message = f"no answer from {url} within {TIMEOUT_S:g} s"
    assert (call.result, call.output) == (
        "FAILED",
        {"timeout": True, "error": {"message": message}},
    )
    assert state.node_run_of("after") is None
    assert ("ERROR", message) in await _levels(driver, run_id, call.id)
    # The receiver had the call (a timeout, not a refused connection), once.
    assert [c["idempotency_key"] for c in receiver.calls].count(call.id) == 1


@pytest.mark.usefixtures("engine", "executor")
async def test_on_timeout_continue_completes_the_node_and_the_run_goes_on(
    driver: Driver, receiver: SlowReceiver
) -> None:
    url = f"{receiver.url}/slow"
    definition = _workflow(url, onTimeout="continue")
    await driver.define(definition)
    run_id = await driver.trigger(definition["identifier"], {})
    state = await driver.wait(run_id, lambda s: s.node_run_of("after") is not None, within=60)
    assert state.status == "IN_PROGRESS"
    call = state.node_run_of("call")
    assert call is not None
    assert (call.status, call.result, call.output) == ("COMPLETED", "SUCCESS", {"timeout": True})
    assert state.outputs["call"] == {"timeout": True}
    warning = f"no answer from {url} within {TIMEOUT_S:g} s; continuing (onTimeout: continue)"
    assert ("WARN", warning) in await _levels(driver, run_id, call.id)
    assert [c["idempotency_key"] for c in receiver.calls].count(call.id) == 1
