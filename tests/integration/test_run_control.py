"""Run control on the real stack: the engine, the timer service and the webhook
executor over Kafka and Redis. No run waits forever: deadlines fail nodes and runs,
retries start new attempts, and a failed run can be re-run from the failed node."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from switchyard.consumers.webhook import WebhookService
from switchyard.engine.machine import waits
from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.state import RunState
from switchyard.engine.service import EngineService
from switchyard.schemas import NodeRunUpdated, RunCommand, encode, node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.helpers import private_redis_db
from tests.integration.engine_support import Driver, echo_server, new_run_id, read_all

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings, session_tag: str) -> Settings:
    """On a Redis database of this session's own: the test runs a timer service."""
    return private_redis_db(settings, session_tag)


@pytest.fixture
async def engine(topics: Settings, templates: Any) -> AsyncIterator[EngineService]:
    async with EngineService(topics, templates) as service:
        yield service


@pytest.fixture
async def executor(topics: Settings, producer: EventProducer) -> AsyncIterator[WebhookService]:
    async with httpx.AsyncClient() as http:
        service = WebhookService(topics, producer, http, lambda: datetime.now(UTC))
        async with service.loop:
            yield service


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An async webhook's receiver that takes the POST and never reports back."""
    with echo_server() as server:
        yield server


def _workflow(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    chain = [{"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}}, *nodes]
    return {
        "identifier": f"control-{uuid.uuid4().hex[:6]}", "nodes": chain,
        "connections": [
            {"sourceIdentifier": a["identifier"], "targetIdentifier": b["identifier"]}
            for a, b in itertools.pairwise(chain)
        ],
        **extra,
    }  # fmt: skip


async def _report(driver: Driver, run_id: str, node: str, attempt: int, result: str) -> None:
    update = NodeRunUpdated(
        run_id=run_id, node_run_id=node_run_id(run_id, node, attempt), status="COMPLETED",
        result=result, output={"attempt": attempt}, sent_at=datetime.now(UTC),
    )  # fmt: skip
    await driver.send(run_id, encode(update))


async def _dead_letters(settings: Settings, run_id: str) -> list[str]:
    topic = TopicRegistry.from_settings(settings).dead_letter.name
    return [
        orjson.loads(r.value)["code"]
        for r in await read_all(settings, topic)
        if r.key == run_id.encode()
    ]


def _done(state: RunState) -> bool:
    return state.status == "COMPLETED"


@pytest.mark.usefixtures("engine", "timers")
async def test_a_kafka_node_nobody_answers_times_out_and_the_run_fails(driver: Driver) -> None:
    definition = _workflow({"identifier": "work", "config": {"type": "KAFKA", "timeoutSeconds": 1}})
    await driver.define(definition)
    run_id = await driver.trigger(definition["identifier"], {})
    running = await driver.wait(run_id, lambda s: s.node_run_of("work") is not None)
    graph = Graph.of(await driver.workflows.get(definition["identifier"], 1) or _missing())
    [wait] = waits(running, graph)
    assert (wait.kind, wait.deadline is not None) == ("worker", True)

    state = await driver.wait(run_id, _done)
    work = state.node_run_of("work")
    assert work is not None
    assert (state.result, work.result) == ("FAILED", "FAILED")
    assert work.output["error"]["message"] == "timed out after 1 s"
    # The worker answers after all: benign, changes nothing, no dead letter.
    await _report(driver, run_id, "work", 1, "SUCCESS")
    marker = await driver.trigger(definition["identifier"], {})  # applied after the report
    await driver.wait(marker, lambda s: s.node_run_of("work") is not None)
    after = await driver.state(run_id)
    assert after is not None
    assert after.node_run_of("work") == work
    assert await _dead_letters(driver.settings, run_id) == []


@pytest.mark.usefixtures("engine", "timers")
async def test_a_retry_succeeds_on_attempt_two_when_the_worker_answers_then(
    driver: Driver,
) -> None:
    retry = {"maxAttempts": 3, "initialIntervalSeconds": 0.2, "retryOn": ["timeout"]}
    definition = _workflow(
        {"identifier": "work", "config": {"type": "KAFKA", "timeoutSeconds": 1, "retry": retry}}
    )
    await driver.define(definition)
    run_id = await driver.trigger(definition["identifier"], {})
    second = node_run_id(run_id, "work", 2)
    state = await driver.wait(run_id, lambda s: s.node_run(second) is not None)
    await _report(driver, run_id, "work", 2, "SUCCESS")
    state = await driver.wait(run_id, _done)
    assert state.result == "SUCCESS"
    first, then = [nr for nr in state.node_runs if nr.node == "work"]
    assert (first.result, first.attempt, first.timed_out) == ("FAILED", 1, True)
    assert (then.result, then.attempt, then.retry_of) == ("SUCCESS", 2, first.id)
    assert state.outputs["work"] == {"attempt": 2}


@pytest.mark.usefixtures("engine", "timers", "executor")
async def test_an_async_webhook_with_on_timeout_continue_moves_on(
    driver: Driver, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, requests = receiver
    definition = _workflow(
        {"identifier": "call", "config": {
            "type": "WEBHOOK", "url": f"{url}/hook", "synchronized": False,
            "timeoutSeconds": 1, "onTimeout": "continue"}},
        {"identifier": "after", "config": {"type": "KAFKA"}},
    )  # fmt: skip
    await driver.define(definition)
    run_id = await driver.trigger(definition["identifier"], {})
    state = await driver.wait(run_id, lambda s: s.node_run_of("after") is not None)
    call = state.node_run_of("call")
    assert call is not None
    assert (call.result, call.output) == ("SUCCESS", {"timeout": True})
    [posted] = [r for r in requests if r["body"]["context"]["workflowRunId"] == run_id]
    assert posted["body"]["context"]["nodeRunId"] == call.id


@pytest.mark.usefixtures("engine")
async def test_a_partial_rerun_from_the_failed_node_reuses_upstream_outputs(
    driver: Driver,
) -> None:
    definition = _workflow(
        {"identifier": "build", "config": {"type": "KAFKA"}},
        {"identifier": "deploy", "config": {"type": "KAFKA",
                                            "payload": {"got": "{{ .outputs.build }}"}}},
    )  # fmt: skip
    await driver.define(definition)
    old = await driver.trigger(definition["identifier"], {})
    await driver.wait(old, lambda s: s.node_run_of("build") is not None)
    await _report(driver, old, "build", 1, "SUCCESS")
    await driver.wait(old, lambda s: s.node_run_of("deploy") is not None)
    await _report(driver, old, "deploy", 1, "FAILED")
    failed = await driver.wait(old, _done)
    assert failed.result == "FAILED"

    new = new_run_id()
    command = RunCommand(run_id=old, command="rerun", by="ops", new_run_id=new, from_node="deploy")
    await driver.send(old, encode(command))
    rerun = await driver.wait(new, lambda s: s.node_run_of("deploy") is not None)
    assert rerun.rerun_of is not None
    assert (rerun.rerun_of.identifier, rerun.rerun_of.from_node) == (old, "deploy")
    build = rerun.node_run_of("build")
    assert build is not None
    assert (build.reused_from, build.result) == (node_run_id(old, "build"), "SUCCESS")
    assert rerun.outputs["build"] == failed.outputs["build"]
    await _report(driver, new, "deploy", 1, "SUCCESS")
    done = await driver.wait(new, _done)
    assert done.result == "SUCCESS"
    # A redelivered command starts no second run: the same id, a duplicate trigger.
    await driver.send(old, encode(command))
    assert await _dead_letters(driver.settings, new) == []


def _missing() -> Any:
    raise AssertionError("the workflow is stored")
