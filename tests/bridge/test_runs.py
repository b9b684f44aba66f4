"""Trigger, get, list, cancel: status codes, input validation, permissions, visibility."""

from __future__ import annotations

import re

from switchyard.engine.service import EngineService
from tests.bridge.support import Api, kafka_workflow, node_run


async def test_trigger_returns_the_created_run(api: Api, engine: EngineService, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "ada"})
    assert re.fullmatch(r"wfr_[A-Za-z0-9]{16}", run["identifier"])
    assert run["status"] == "IN_PROGRESS"
    assert run["result"] is None
    assert run["createdBy"] == "admin@example.com"
    assert run["workflow"] == {"identifier": wf_id, "version": 1}
    assert node_run(run, "trigger")["output"] == {"name": "ada"}
    assert node_run(run, "work")["status"] == "IN_PROGRESS"
    assert await api.run(run["identifier"]) == run


async def test_inputs_are_validated_naming_each_field(api: Api, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id))
    response = await api.call(
        "POST", f"/v1/workflows/{wf_id}/runs",
        json={"inputs": {"env": "prod", "count": "three", "extra": 1}},
    )  # fmt: skip
    assert response.status_code == 422
    message = response.json()["message"]
    for field in ("inputs.name: is required", "inputs.env: must be one of staging, production",
                  "inputs.count: must be a number", "inputs.extra: is not an input"):  # fmt: skip
        assert field in message
    response = await api.call("POST", f"/v1/workflows/{wf_id}/runs", json={"inputs": []})
    assert response.status_code == 422
    assert "body.inputs" in response.json()["message"]


async def test_trigger_unknown_workflow_or_trigger(api: Api, wf_id: str) -> None:
    missing = await api.call("POST", f"/v1/workflows/{wf_id}/runs", json={"inputs": {}})
    assert missing.status_code == 404
    await api.define(kafka_workflow(wf_id))
    wrong = await api.call(
        "POST", f"/v1/workflows/{wf_id}/runs", json={"inputs": {}, "nodeIdentifier": "work"}
    )
    assert wrong.status_code == 422
    assert "nodeIdentifier" in wrong.json()["message"]


async def test_trigger_permissions(api: Api, engine: EngineService, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id))  # none set: Admins (and machines) only
    body = {"inputs": {"name": "ada"}}
    denied = await api.call("POST", f"/v1/workflows/{wf_id}/runs", "member", json=body)
    assert denied.status_code == 403
    assert denied.json()["error"] == "forbidden"
    by_team = wf_id + "-team"
    await api.define(kafka_workflow(by_team, permissions={"teams": ["dev"]}))
    assert (await api.trigger(by_team, {"name": "ada"}, "member"))["createdBy"] == (
        "member@example.com"
    )
    other = await api.call("POST", f"/v1/workflows/{by_team}/runs", "other", json=body)
    assert other.status_code == 403
    by_user = wf_id + "-user"
    await api.define(kafka_workflow(by_user, permissions={"users": ["other@example.com"]}))
    await api.trigger(by_user, {"name": "ada"}, "other")
    await api.trigger(by_user, {"name": "ada"}, "machine")


async def test_without_engine_the_trigger_answers_202(api: Api, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id))
    api.ctx.settings = api.ctx.settings.model_copy(update={"trigger_wait_ms": 50})
    response = await api.call(
        "POST", f"/v1/workflows/{wf_id}/runs", json={"inputs": {"name": "ab"}}
    )
    assert response.status_code == 202
    run_id = response.json()["workflowRun"]["identifier"]
    assert response.headers["Location"] == f"/v1/workflows/runs/{run_id}"


async def test_idempotency_key_gives_the_same_run(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    body = {"inputs": {"name": "ada"}}
    headers = {"Idempotency-Key": f"key-{wf_id}"}
    path = f"/v1/workflows/{wf_id}/runs"
    first = await api.call("POST", path, json=body, headers=headers)
    second = await api.call("POST", path, json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["workflowRun"]["identifier"] == second.json()["workflowRun"]["identifier"]
    third = await api.call("POST", path, json=body)
    assert third.json()["workflowRun"]["identifier"] != first.json()["workflowRun"]["identifier"]


async def test_get_run_errors(api: Api) -> None:
    malformed = await api.call("GET", "/v1/workflows/runs/wfr_short")
    assert malformed.status_code == 422
    assert "run_id" in malformed.json()["message"]
    missing = await api.call("GET", "/v1/workflows/runs/wfr_AAAAAAAAAAAAAAAA")
    assert missing.status_code == 404


async def test_visibility(api: Api, engine: EngineService, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id, permissions={"roles": ["Member"]}, anyone=False))
    mine = await api.trigger(wf_id, {"name": "ada"}, "member")
    theirs = await api.trigger(wf_id, {"name": "bob"}, "other")
    assert (
        await api.call("GET", f"/v1/workflows/runs/{theirs['identifier']}", "member")
    ).status_code == 404
    await api.run(mine["identifier"], "member")
    await api.run(theirs["identifier"], "machine")
    listed = await api.call(
        "GET", "/v1/workflows/runs", "member", params={"workflowIdentifiers": wf_id}
    )
    assert [r["identifier"] for r in listed.json()["workflowRuns"]] == [mine["identifier"]]
    everyone = await api.call(
        "GET", "/v1/workflows/runs", "admin", params={"workflowIdentifiers": wf_id}
    )
    ids = [r["identifier"] for r in everyone.json()["workflowRuns"]]
    assert ids == [theirs["identifier"], mine["identifier"]]  # newest first
    open_wf = wf_id + "-open"
    await api.define(kafka_workflow(open_wf, permissions={"roles": ["Member"]}))
    shared = await api.trigger(open_wf, {"name": "cy"}, "other")
    await api.run(shared["identifier"], "member")


async def test_list_filters_and_paging(api: Api, engine: EngineService, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id))
    runs = [await api.trigger(wf_id, {"name": f"n{i}"}) for i in range(3)]
    newest_first = [r["identifier"] for r in reversed(runs)]

    async def ids(**params: object) -> list[str]:
        response = await api.call(
            "GET", "/v1/workflows/runs", params={"workflowIdentifiers": wf_id, **params}
        )
        assert response.status_code == 200, response.text
        return [r["identifier"] for r in response.json()["workflowRuns"]]

    assert await ids() == newest_first
    assert await ids(limit=1, offset=1) == newest_first[1:2]
    assert await ids(statuses="IN_PROGRESS") == newest_first
    assert await ids(statuses="COMPLETED") == []
    assert await ids(results="SUCCESS") == []
    assert await ids(createdBy="admin@example.com") == newest_first
    assert await ids(createdBy="nobody") == []
    assert await ids(workflowVersions="1") == newest_first
    assert await ids(workflowVersions="2") == []
    assert await ids(workflowRunIdentifiers=runs[0]["identifier"]) == [runs[0]["identifier"]]


async def test_list_bad_queries_are_422(api: Api) -> None:
    for params in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"statuses": "DONE"},
                   {"results": "MAYBE"}, {"workflowVersions": "x"},
                   {"offset": 10**19}):  # fmt: skip
        response = await api.call("GET", "/v1/workflows/runs", params=params)
        assert response.status_code == 422, params
        assert response.json()["ok"] is False
        assert next(iter(params)) in response.json()["message"]


async def test_cancel(api: Api, engine: EngineService, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id, permissions={"roles": ["Member"]}))
    run = await api.trigger(wf_id, {"name": "ada"}, "member")
    path = f"/v1/workflows/runs/{run['identifier']}/cancel"
    assert (await api.call("POST", path, "other")).status_code == 403
    assert (await api.call("POST", path, "member")).status_code == 200
    from tests.helpers import until

    await until(lambda: api.run(run["identifier"]), lambda r: r["status"] == "COMPLETED")
    again = await api.call("POST", path, "admin")
    assert again.status_code == 409
    assert (
        await api.call("POST", "/v1/workflows/runs/wfr_AAAAAAAAAAAAAAAA/cancel")
    ).status_code == 404
