"""Read-API additions for the UI and the CLI: ``createdAfter``/``createdBefore`` and
``entity=`` on ``GET /v1/workflows/runs``, ``GET /v1/workflows/{id}?version=N``
(real Kafka, Redis and engine)."""

from __future__ import annotations

from typing import Any

import pytest

from switchyard.engine.service import EngineService
from switchyard.engine.trigger_matcher import TriggerMatcher
from tests.bridge.support import Api, kafka_workflow
from tests.helpers import until

pytestmark = pytest.mark.integration


async def _ids(api: Api, query: str, who: str = "admin") -> list[str]:
    response = await api.call("GET", f"/v1/workflows/runs{query}", who)
    assert response.status_code == 200, response.text
    return [run["identifier"] for run in response.json()["workflowRuns"]]


async def _refused(api: Api, path: str) -> str:
    response = await api.call("GET", path)
    assert response.status_code == 422, response.text
    message: str = response.json()["message"]
    return message


async def test_created_after_and_before_bound_the_list_by_created_at(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    first = await api.trigger(wf_id, {"name": "first"})
    second = await api.trigger(wf_id, {"name": "second"})
    ids = first["identifier"], second["identifier"]
    assert first["createdAt"] < second["createdAt"]
    scope = f"?workflowIdentifiers={wf_id}"
    assert await _ids(api, f"{scope}&createdAfter={second['createdAt']}") == [ids[1]]
    assert await _ids(api, f"{scope}&createdBefore={first['createdAt']}") == [ids[0]]
    both = f"{scope}&createdAfter={first['createdAt']}&createdBefore={second['createdAt']}"
    assert await _ids(api, both) == [ids[1], ids[0]]  # newest first
    # Offsets (without a zone: UTC) and paging combine with the bounds.
    local = second["createdAt"].replace("Z", "+00:00")
    assert await _ids(api, f"{scope}&createdAfter={local.replace('+', '%2B')}") == [ids[1]]
    assert await _ids(api, f"{both}&limit=1&offset=1") == [ids[0]]
    assert await _ids(api, f"{scope}&createdAfter=2999-01-01T00:00:00") == []
    for name in ("createdAfter", "createdBefore"):
        message = await _refused(api, f"/v1/workflows/runs?{name}=yesterday")
        assert message.startswith(f"query.{name}: must be an ISO 8601 timestamp"), message
        assert "'yesterday'" in message


def _entity_workflow(identifier: str) -> dict[str, Any]:
    definition = kafka_workflow(identifier)
    definition["nodes"][0]["config"]["userInputs"]["properties"].update({
        "service": {"type": "string", "format": "entity", "blueprint": "service"},
        "deps": {"type": "array",
                 "items": {"type": "string", "format": "entity", "blueprint": "service"}},
    })  # fmt: skip
    return definition


async def test_runs_are_listed_by_the_entities_their_trigger_names(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(_entity_workflow(wf_id))
    tag = wf_id[3:]
    svc, dep = f"svc-{tag}", f"dep-{tag}"
    older = await api.trigger(wf_id, {"name": "a1", "service": svc})
    newer = await api.trigger(wf_id, {"name": "a2", "service": dep, "deps": [svc]})
    unrelated = await api.trigger(wf_id, {"name": "a3"})
    assert await _ids(api, f"?entity=service/{svc}") == [newer["identifier"], older["identifier"]]
    assert await _ids(api, f"?entity=service/{dep}") == [newer["identifier"]]
    assert await _ids(api, f"?entity=other/{svc}") == []
    assert unrelated["identifier"] not in await _ids(
        api, f"?workflowIdentifiers={wf_id}&entity=service/{svc}"
    )
    # With the other filters.
    assert await _ids(api, f"?entity=service/{svc}&createdAfter={newer['createdAt']}") == [
        newer["identifier"]
    ]
    assert await _ids(api, f"?entity=service/{svc}&statuses=COMPLETED") == []
    for bad in ("service", "service/", "/svc"):
        message = await _refused(api, f"/v1/workflows/runs?entity={bad}")
        assert message.startswith("query.entity: must be <blueprint>/<entity identifier>"), message


async def test_a_workflow_version_is_read_by_its_number(api: Api, wf_id: str) -> None:
    first = kafka_workflow(wf_id)
    first["title"] = "Version one"
    await api.define(first)
    second = kafka_workflow(wf_id)
    second["title"] = "Version two"
    updated = await api.call("PUT", f"/v1/workflows/{wf_id}", json=second)
    assert updated.status_code == 200, updated.text
    for query, version, title in (("", 2, "Version two"), ("?version=1", 1, "Version one"),
                                  ("?version=2", 2, "Version two")):  # fmt: skip
        response = await api.call("GET", f"/v1/workflows/{wf_id}{query}")
        assert response.status_code == 200, response.text
        workflow = response.json()["workflow"]
        assert (workflow["version"], workflow["title"]) == (version, title)
    missing = await api.call("GET", f"/v1/workflows/{wf_id}?version=3")
    assert missing.status_code == 404
    assert missing.json()["message"] == f"version 3 of workflow {wf_id} not found"
    for bad in ("0", "-1", "two", "1.5", "99999999999999999999"):
        message = await _refused(api, f"/v1/workflows/{wf_id}?version={bad}")
        assert message == f"query.version: must be a positive integer (got {bad!r})"
    # A deleted workflow's versions stay readable, as its runs do.
    deleted = await api.call("DELETE", f"/v1/workflows/{wf_id}")
    assert deleted.status_code == 200, deleted.text
    assert (await api.call("GET", f"/v1/workflows/{wf_id}")).status_code == 404
    kept = await api.call("GET", f"/v1/workflows/{wf_id}?version=1")
    assert kept.status_code == 200
    assert kept.json()["workflow"]["title"] == "Version one"


async def test_an_event_triggered_run_is_listed_by_the_entity_its_event_names(
    api: Api, engine: EngineService, matcher: TriggerMatcher, wf_id: str
) -> None:
    blueprint = f"bp-{wf_id[3:]}"
    made = await api.call("POST", "/v1/blueprints", json={"identifier": blueprint})
    assert made.status_code == 201, made.text
    event = {"type": "ENTITY_CREATED", "blueprintIdentifier": blueprint}
    await api.define({
        "identifier": wf_id,
        "nodes": [{"identifier": "trigger", "config": {"type": "EVENT_TRIGGER", "event": event}},
                  {"identifier": "work", "config": {"type": "KAFKA"}}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
    })  # fmt: skip
    written = await api.call(
        "POST", f"/v1/blueprints/{blueprint}/entities", json={"identifier": "e1"}
    )
    assert written.status_code == 201, written.text
    [run_id] = await until(lambda: _ids(api, f"?workflowIdentifiers={wf_id}"))
    assert await _ids(api, f"?entity={blueprint}/e1") == [run_id]
    assert await _ids(api, f"?entity={blueprint}/e2") == []
