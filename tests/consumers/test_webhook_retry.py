"""The webhook executor with the engine and the timer service: a retried WEBHOOK node
sends each attempt's own node-run id as ``Idempotency-Key``, and ``retryOn`` HTTP
statuses are matched against the status the executor reported."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from switchyard.consumers.webhook import WebhookService
from switchyard.engine.machine.state import RunState
from switchyard.engine.service import EngineService
from switchyard.schemas import node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from tests.helpers import LocalHandler, private_redis_db, serving
from tests.integration.engine_support import Driver

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("engine", "timers", "executor")]


@pytest.fixture
def settings(settings: Settings, session_tag: str) -> Settings:
    """On a Redis database of this session's own: the test runs a timer service."""
    return private_redis_db(settings, session_tag)


class _Flaky(LocalHandler):
    """Answers the statuses of ``/<a>,<b>,…`` in turn (then 200), recording each call."""

    def do_POST(self) -> None:
        self.body()
        calls: list[dict[str, Any]] = self.server.records  # type: ignore[attr-defined]
        plan = [int(s) for s in self.path.strip("/").split(",") if s]
        status = plan[len(calls)] if len(calls) < len(plan) else 200
        count = self.record({"key": self.headers.get("Idempotency-Key"), "status": status})
        self.answer(status, {"call": count})


@pytest.fixture
def flaky() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with serving(_Flaky) as found:
        yield found


@pytest.fixture
async def executor(
    topics: Settings, producer: EventProducer, engine: EngineService
) -> AsyncIterator[WebhookService]:
    async with httpx.AsyncClient() as http:
        service = WebhookService(topics, producer, http, lambda: datetime.now(UTC))
        async with service.loop:
            yield service


def _workflow(url: str, retry_on: list[Any]) -> dict[str, Any]:
    chain = [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "call", "config": {
            "type": "WEBHOOK", "url": url, "method": "POST", "body": {"n": 1},
            "retry": {"maxAttempts": 3, "initialIntervalSeconds": 0.05, "retryOn": retry_on}}},
    ]  # fmt: skip
    return {
        "identifier": f"hook-retry-{uuid.uuid4().hex[:6]}",
        "nodes": chain,
        "connections": [
            {"sourceIdentifier": a["identifier"], "targetIdentifier": b["identifier"]}
            for a, b in itertools.pairwise(chain)
        ],
    }


def _done(state: RunState) -> bool:
    return state.status == "COMPLETED"


async def test_each_attempt_sends_its_own_node_run_id_and_503_is_retried(
    driver: Driver, flaky: tuple[str, list[dict[str, Any]]]
) -> None:
    url, calls = flaky
    definition = _workflow(f"{url}/503,503", [503])
    await driver.define(definition)
    run_id = await driver.trigger(definition["identifier"], {})
    state = await driver.wait(run_id, _done)
    assert state.result == "SUCCESS"
    attempts = [node_run_id(run_id, "call", n) for n in (1, 2, 3)]
    assert calls == [{"key": attempts[0], "status": 503}, {"key": attempts[1], "status": 503},
                     {"key": attempts[2], "status": 200}]  # fmt: skip
    call_runs = [nr for nr in state.node_runs if nr.node == "call"]
    assert [(nr.id, nr.attempt, nr.retry_of, nr.result) for nr in call_runs] == [
        (attempts[0], 1, None, "FAILED"),
        (attempts[1], 2, attempts[0], "FAILED"),
        (attempts[2], 3, attempts[1], "SUCCESS"),
    ]
    assert call_runs[0].output["response"]["status"] == 503
    assert state.outputs["call"] == {"response": {"status": 200, "data": {"call": 3}}}


async def test_a_status_retry_on_does_not_name_fails_at_once(
    driver: Driver, flaky: tuple[str, list[dict[str, Any]]]
) -> None:
    url, calls = flaky
    definition = _workflow(f"{url}/400", [503, "timeout"])
    await driver.define(definition)
    run_id = await driver.trigger(definition["identifier"], {})
    state = await driver.wait(run_id, _done)
    assert state.result == "FAILED"
    assert calls == [{"key": node_run_id(run_id, "call", 1), "status": 400}]
    [call] = [nr for nr in state.node_runs if nr.node == "call"]
    assert call.output["response"]["status"] == 400
    assert call.output["error"]["message"] == f"{url}/400 answered 400"
