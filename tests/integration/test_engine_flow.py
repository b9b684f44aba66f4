"""A workflow through the real engine: Kafka inbox, faust, Redis, the webhook executor."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from switchyard.consumers.webhook import WebhookService
from switchyard.engine.service import EngineService
from switchyard.schemas import NodeRunUpdated, encode, node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from tests.integration.engine_support import Driver, consume

pytestmark = pytest.mark.integration


@pytest.fixture
async def executor(topics: Settings, producer: EventProducer) -> AsyncIterator[WebhookService]:
    async with httpx.AsyncClient() as http:
        service = WebhookService(topics, producer, http, lambda: datetime.now(UTC))
        await service.loop.start()
        task = asyncio.create_task(service.loop.run())
        yield service
        service.loop.stop_soon()
        await task
        await service.loop.stop()


def deploy_workflow(identifier: str, url: str, *, on_failure: str = "terminate") -> dict[str, Any]:
    """trigger → check (CONDITION) → call (WEBHOOK) → announce (KAFKA)."""
    return {
        "identifier": identifier,
        "title": "Deploy",
        "nodes": [
            {"identifier": "trigger", "title": "Deploy a service", "config": {
                "type": "SELF_SERVE_TRIGGER",
                "userInputs": {
                    "properties": {
                        "service": {"type": "string"},
                        "environment": {"type": "string", "enum": ["staging", "production"]},
                    },
                    "required": ["service", "environment"],
                },
            }},
            {"identifier": "check", "config": {"type": "CONDITION", "outlets": [
                {"identifier": "prod", "title": "Production",
                 "expression": '.outputs.trigger.environment == "production"'},
            ]}},
            {"identifier": "call", "config": {
                "type": "WEBHOOK", "url": url, "method": "POST", "onFailure": on_failure,
                "body": {"service": "{{ .outputs.trigger.service }}",
                         "env": "{{ .outputs.trigger.environment }}"},
            }},
            {"identifier": "announce", "config": {"type": "KAFKA", "payload": {
                "deployed": "{{ .outputs.call.response.data.received.service }}",
                "status": "{{ .outputs.call.response.status }}",
                "summary": "{{ .outputs.trigger.service }} went to "
                           "{{ .outputs.trigger.environment }}",
            }}},
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "check"},
            {"sourceIdentifier": "check", "targetIdentifier": "call",
             "sourceOutletIdentifier": "prod"},
            {"sourceIdentifier": "call", "targetIdentifier": "announce"},
        ],
    }  # fmt: skip


def _completion(run_id: str, node: str, **fields: Any) -> bytes:
    event = NodeRunUpdated.model_validate(
        {"runId": run_id, "nodeRunId": node_run_id(run_id, node), "status": "COMPLETED",
         "result": "SUCCESS", "sentAt": datetime.now(UTC), **fields}
    )  # fmt: skip
    return encode(event)


def _waiting_on(node: str) -> Any:
    return lambda s: any(nr.node == node and nr.status == "IN_PROGRESS" for nr in s.node_runs)


@pytest.mark.usefixtures("engine", "executor")
async def test_trigger_condition_webhook_kafka_runs_to_success(
    driver: Driver, topics: Settings, http: tuple[str, list[dict[str, Any]]]
) -> None:
    url, requests = http
    workflow = f"deploy-{uuid.uuid4().hex[:6]}"
    await driver.define(deploy_workflow(workflow, f"{url}/deploy"))
    run_id = await driver.trigger(workflow, {"service": "api", "environment": "production"})

    await driver.wait(run_id, _waiting_on("announce"))
    assert requests == [{"path": "/deploy", "body": {"service": "api", "env": "production"}}]
    [request] = await consume(
        topics, driver.registry.node_run_requests.name, 1, lambda r: r.key == run_id.encode()
    )
    message = orjson.loads(request.value)
    assert message["payload"] == {
        "deployed": "api",
        "status": 200,
        "summary": "api went to production",
    }  # a single template keeps the JSON type (200 stays a number)
    assert message["context"] == {
        "workflowIdentifier": workflow, "workflowRunId": run_id,
        "nodeRunId": node_run_id(run_id, "announce"), "nodeIdentifier": "announce",
        "runId": node_run_id(run_id, "announce"),
    }  # fmt: skip

    await driver.send(run_id, _completion(
        run_id, "announce", output={"version": "1.2"},
        logs=[{"logLevel": "INFO", "log": "announced"}],
    ))  # fmt: skip
    state = await driver.wait(run_id, lambda s: s.status == "COMPLETED")
    assert state.result == "SUCCESS"
    assert [(nr.node, nr.status, nr.result) for nr in state.node_runs] == [
        ("trigger", "COMPLETED", "SUCCESS"), ("check", "COMPLETED", "SUCCESS"),
        ("call", "COMPLETED", "SUCCESS"), ("announce", "COMPLETED", "SUCCESS"),
    ]  # fmt: skip
    assert state.outputs["trigger"] == {"service": "api", "environment": "production"}
    assert state.outputs["check"]["selectedOutlet"]["identifier"] == "prod"
    assert state.outputs["call"]["response"]["status"] == 200
    assert state.outputs["announce"] == {"version": "1.2"}
    logs = await driver.runs.logs(run_id, [nr.id for nr in state.node_runs])
    lines = [entry.log for entry in logs[node_run_id(run_id, "announce")]]
    assert lines[0].startswith("published to the node-run request topic")
    assert lines[-1] == "announced"


@pytest.mark.usefixtures("engine", "executor")
async def test_condition_without_a_match_ends_the_branch_with_success(
    driver: Driver, http: tuple[str, list[dict[str, Any]]]
) -> None:
    url, requests = http
    workflow = f"deploy-{uuid.uuid4().hex[:6]}"
    await driver.define(deploy_workflow(workflow, f"{url}/deploy"))
    run_id = await driver.trigger(workflow, {"service": "api", "environment": "staging"})
    state = await driver.wait(run_id, lambda s: s.status == "COMPLETED")
    assert state.result == "SUCCESS"
    assert [nr.node for nr in state.node_runs] == ["trigger", "check"]
    assert state.outputs["check"] == {"selectedOutlet": None, "fallback": True}
    assert requests == []


@pytest.mark.usefixtures("engine", "executor")
async def test_failing_webhook_fails_the_run(
    driver: Driver, http: tuple[str, list[dict[str, Any]]]
) -> None:
    url, _ = http
    workflow = f"deploy-{uuid.uuid4().hex[:6]}"
    await driver.define(deploy_workflow(workflow, f"{url}/fail"))
    run_id = await driver.trigger(workflow, {"service": "api", "environment": "production"})
    state = await driver.wait(run_id, lambda s: s.status == "COMPLETED")
    assert state.result == "FAILED"
    call = state.node_run_of("call")
    assert call is not None
    assert (call.status, call.result) == ("COMPLETED", "FAILED")
    assert state.node_run_of("announce") is None
    logs = await driver.runs.logs(run_id, [call.id])
    assert any(e.log_level == "ERROR" and "500" in e.log for e in logs[call.id])


@pytest.mark.usefixtures("engine", "executor")
async def test_on_failure_continue_moves_the_run_on(
    driver: Driver, http: tuple[str, list[dict[str, Any]]]
) -> None:
    url, _ = http
    workflow = f"deploy-{uuid.uuid4().hex[:6]}"
    await driver.define(deploy_workflow(workflow, f"{url}/fail", on_failure="continue"))
    run_id = await driver.trigger(workflow, {"service": "api", "environment": "production"})
    await driver.wait(run_id, _waiting_on("announce"))
    await driver.send(run_id, _completion(run_id, "announce"))
    state = await driver.wait(run_id, lambda s: s.status == "COMPLETED")
    assert state.result == "SUCCESS"
    call = state.node_run_of("call")
    assert call is not None
    assert call.result == "FAILED"
    assert state.outputs["call"]["response"]["status"] == 500


async def test_malformed_event_goes_to_dead_letter_and_the_engine_goes_on(
    engine: EngineService, driver: Driver, topics: Settings
) -> None:
    poison_key = f"poison-{uuid.uuid4().hex[:8]}"
    await driver.send(poison_key, b"\xff{not json")
    workflow = f"solo-{uuid.uuid4().hex[:6]}"
    await driver.define({"identifier": workflow, "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "work", "config": {"type": "KAFKA", "payload": {"x": 1}}},
    ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}]})  # fmt: skip
    run_id = await driver.trigger(workflow, {})
    await driver.wait(run_id, _waiting_on("work"))
    await driver.send(run_id, _completion(run_id, "work"))
    state = await driver.wait(run_id, lambda s: s.status == "COMPLETED")
    assert state.result == "SUCCESS"

    [letter] = await consume(
        topics, driver.registry.dead_letter.name, 1, lambda r: r.key == poison_key.encode()
    )
    body = orjson.loads(letter.value)
    assert body["code"] == "undecodable"
    assert body["value_encoding"] == "base64"
    assert "not JSON" in body["reason"]


@pytest.mark.usefixtures("engine")
async def test_a_runaway_template_fails_its_node_and_the_engine_goes_on(driver: Driver) -> None:
    workflow = f"abuse-{uuid.uuid4().hex[:6]}"
    await driver.define({"identifier": workflow, "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "spin", "config": {"type": "KAFKA", "payload": {"x": "{{ def f: f; f }}"}}},
    ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "spin"}]})  # fmt: skip
    run_id = await driver.trigger(workflow, {})
    state = await driver.wait(run_id, lambda s: s.status == "COMPLETED")
    assert state.result == "FAILED"
    spin = state.node_run_of("spin")
    assert spin is not None
    logs = await driver.runs.logs(run_id, [spin.id])
    errors = [e.log for e in logs[spin.id] if e.log_level == "ERROR"]
    assert any("def f: f; f" in line and "500 ms" in line for line in errors), errors

    # The engine still serves the next run.
    other = await driver.trigger(workflow, {})
    assert (await driver.wait(other, lambda s: s.status == "COMPLETED")).result == "FAILED"


@pytest.mark.usefixtures("engine")
async def test_a_webhook_to_loopback_is_refused_unless_allowed(
    driver: Driver, topics: Settings, producer: EventProducer,
    http: tuple[str, list[dict[str, Any]]],
) -> None:  # fmt: skip
    url, requests = http
    guarded = topics.model_copy(update={"webhook_allow_hosts": []})
    async with httpx.AsyncClient() as client:
        service = WebhookService(guarded, producer, client, lambda: datetime.now(UTC))
        await service.loop.start()
        task = asyncio.create_task(service.loop.run())
        try:
            workflow = f"ssrf-{uuid.uuid4().hex[:6]}"
            await driver.define(deploy_workflow(workflow, f"{url}/deploy"))
            run_id = await driver.trigger(workflow, {"service": "api", "environment": "production"})
            state = await driver.wait(run_id, lambda s: s.status == "COMPLETED")
        finally:
            service.loop.stop_soon()
            await task
            await service.loop.stop()
    assert state.result == "FAILED"
    assert requests == []
    call = state.node_run_of("call")
    assert call is not None
    logs = await driver.runs.logs(run_id, [call.id])
    assert any("127.0.0.1" in e.log and e.log_level == "ERROR" for e in logs[call.id]), logs
