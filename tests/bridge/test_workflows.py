"""Workflow CRUD: 201/409/422 on create, list, get, PUT as a new version, soft delete."""

from __future__ import annotations

from switchyard.engine.service import EngineService
from tests.bridge.support import Api, kafka_workflow


async def test_create_get_list(api: Api, wf_id: str) -> None:
    created = await api.define(kafka_workflow(wf_id))
    assert created["identifier"] == wf_id
    assert created["version"] == 1
    got = await api.call("GET", f"/v1/workflows/{wf_id}")
    assert got.status_code == 200
    assert got.json()["workflow"]["nodes"][1]["identifier"] == "work"
    listed = await api.call("GET", "/v1/workflows")
    assert wf_id in [w["identifier"] for w in listed.json()["workflows"]]


async def test_create_twice_is_409(api: Api, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id))
    again = await api.call("POST", "/v1/workflows", json=kafka_workflow(wf_id))
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"


async def test_invalid_definition_is_422_naming_the_problem(api: Api, wf_id: str) -> None:
    definition = kafka_workflow(wf_id)
    definition["connections"].append({"sourceIdentifier": "work", "targetIdentifier": "ghost"})
    definition["nodes"][1]["config"]["type"] = "CURSOR_AGENT"
    response = await api.call("POST", "/v1/workflows", json=definition)
    assert response.status_code == 422
    assert "nodes[1].config.type: CURSOR_AGENT is not supported" in response.json()["message"]
    response = await api.call("POST", "/v1/workflows", json={"identifier": wf_id, "nodes": []})
    assert response.status_code == 422
    assert "nodes" in response.json()["message"]


async def test_members_may_not_edit(api: Api, wf_id: str) -> None:
    response = await api.call("POST", "/v1/workflows", "member", json=kafka_workflow(wf_id))
    assert response.status_code == 403


async def test_members_see_only_workflows_they_may_run(api: Api, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id))  # no permissions: Admins only
    await api.define(kafka_workflow(wf_id + "-t", permissions={"teams": ["dev"]}))
    listed = await api.call("GET", "/v1/workflows", "member")
    ids = [w["identifier"] for w in listed.json()["workflows"]]
    assert wf_id + "-t" in ids
    assert wf_id not in ids
    assert (await api.call("GET", f"/v1/workflows/{wf_id}", "member")).status_code == 404


async def test_put_stores_a_new_version(api: Api, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id))
    changed = kafka_workflow(wf_id)
    changed["title"] = "Renamed"
    response = await api.call("PUT", f"/v1/workflows/{wf_id}", json=changed)
    assert response.status_code == 200
    assert response.json()["workflow"]["version"] == 2
    assert (await api.call("GET", f"/v1/workflows/{wf_id}")).json()["workflow"][
        "title"
    ] == "Renamed"


async def test_put_errors(api: Api, wf_id: str) -> None:
    missing = await api.call("PUT", f"/v1/workflows/{wf_id}", json=kafka_workflow(wf_id))
    assert missing.status_code == 404
    await api.define(kafka_workflow(wf_id))
    other = await api.call("PUT", f"/v1/workflows/{wf_id}", json=kafka_workflow("elsewhere"))
    assert other.status_code == 422
    assert other.json()["message"].startswith("identifier:")
    bad = await api.call("GET", "/v1/workflows/has%20space")
    assert bad.status_code == 422


async def test_delete_is_soft(api: Api, engine: EngineService, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "ada"})
    deleted = await api.call("DELETE", f"/v1/workflows/{wf_id}")
    assert deleted.status_code == 200
    assert (await api.call("GET", f"/v1/workflows/{wf_id}")).status_code == 404
    assert (await api.call("DELETE", f"/v1/workflows/{wf_id}")).status_code == 404
    trigger = await api.call("POST", f"/v1/workflows/{wf_id}/runs", json={"inputs": {"name": "x"}})
    assert trigger.status_code == 404
    assert (await api.run(run["identifier"]))["workflow"]["identifier"] == wf_id
    listed = await api.call("GET", "/v1/workflows", params={"isDeleted": "true"})
    assert wf_id in [w["identifier"] for w in listed.json()["workflows"]]
