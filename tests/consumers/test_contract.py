"""The documented Kafka contract: schema files match the models, and events produced
straight to the inbox are validated like the API's, invalid ones dead-lettered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from switchyard.consumers.contract import MESSAGES, json_schemas, stale
from switchyard.schemas import NodeRunUpdated, RunTriggered, encode, node_run_id
from switchyard.schemas.settings import Settings
from tests.integration.engine_support import Driver, consume, new_run_id

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_schema_files_are_up_to_date() -> None:
    assert stale(SCHEMAS) == [], (
        "docs/schemas is stale: run `python -m switchyard.consumers.contract docs/schemas`"
    )
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == sorted(f"{m}.json" for m in MESSAGES)


def test_schemas_use_the_wire_names() -> None:
    update = orjson.loads(json_schemas()["NodeRunUpdated.json"])
    assert {"runId", "nodeRunId", "externalRunId", "sentAt"} <= set(update["properties"])
    assert set(update["required"]) == {"runId", "nodeRunId", "status", "sentAt"}
    inbox = orjson.loads(json_schemas()["InboxEvent.json"])
    assert inbox["discriminator"]["propertyName"] == "type"


def _workflow(identifier: str) -> dict[str, Any]:
    return {"identifier": identifier, "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
            "properties": {"env": {"type": "string", "enum": ["staging", "production"]}},
            "required": ["env"]}}},
        {"identifier": "work", "config": {"type": "KAFKA", "payload": {}}},
    ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}]}  # fmt: skip


async def _dead_letter(settings: Settings, driver: Driver, key: str) -> dict[str, Any]:
    [letter] = await consume(
        settings, driver.registry.dead_letter.name, 1, lambda r: r.key == key.encode()
    )
    body: dict[str, Any] = orjson.loads(letter.value)
    return body


@pytest.mark.integration
@pytest.mark.usefixtures("engine")
async def test_invalid_run_triggered_goes_to_dead_letter(topics: Settings, driver: Driver) -> None:
    workflow = f"dl-{uuid.uuid4().hex[:6]}"
    await driver.define(_workflow(workflow))
    run_id = new_run_id()
    event = RunTriggered.model_validate(
        {"runId": run_id, "workflowIdentifier": workflow, "inputs": {"env": "prod"},
         "createdBy": "producer", "triggeredAt": datetime.now(UTC)}
    )  # fmt: skip
    await driver.send(run_id, encode(event))
    letter = await _dead_letter(topics, driver, run_id)
    assert letter["code"] != "undecodable"
    assert "env" in letter["reason"]
    assert "prod" in letter["reason"]
    assert orjson.loads(letter["value"])["inputs"] == {"env": "prod"}
    assert await driver.state(run_id) is None  # no run was created


@pytest.mark.integration
@pytest.mark.usefixtures("engine")
async def test_invalid_node_run_updated_goes_to_dead_letter(
    topics: Settings, driver: Driver
) -> None:
    workflow = f"dl-{uuid.uuid4().hex[:6]}"
    await driver.define(_workflow(workflow))
    run_id = await driver.trigger(workflow, {"env": "staging"})
    await driver.wait(run_id, lambda s: s.node_run_of("work") is not None)
    # COMPLETED without a result: refused by the schema, as the API would refuse it.
    raw = {"type": "NodeRunUpdated", "runId": run_id, "nodeRunId": node_run_id(run_id, "work"),
           "status": "COMPLETED", "sentAt": "2026-01-01T00:00:00.000Z"}  # fmt: skip
    await driver.send(run_id, orjson.dumps(raw))
    letter = await _dead_letter(topics, driver, run_id)
    assert letter["code"] == "undecodable"
    assert "result is required" in letter["reason"]

    # Well-formed, but for a node run this run does not have: rejected by the engine.
    stranger = NodeRunUpdated.model_validate(
        {"runId": run_id, "nodeRunId": node_run_id(run_id, "nowhere"), "status": "COMPLETED",
         "result": "SUCCESS", "sentAt": datetime.now(UTC)}
    )  # fmt: skip
    await driver.send(run_id, encode(stranger))
    letters = await consume(
        topics, driver.registry.dead_letter.name, 2, lambda r: r.key == run_id.encode()
    )
    second = orjson.loads(letters[1].value)
    assert second["code"] not in ("undecodable", letter["code"])
    assert node_run_id(run_id, "nowhere") in second["reason"]
    state = await driver.state(run_id)
    assert state is not None
    assert state.status == "IN_PROGRESS"  # neither event changed the run
