"""A self-service trigger's ``policy``: evaluated against the caller and the form when
no static entry admits the caller, never accepted and ignored."""

from __future__ import annotations

from typing import Any

from switchyard.engine.service import EngineService
from tests.bridge.support import Api, kafka_workflow


def on(context: str, prop: str, operator: str, value: Any) -> dict[str, Any]:
    return {"property": {"context": context, "property": prop}, "operator": operator,
            "value": value}  # fmt: skip


async def test_a_policy_lets_in_who_its_rules_allow(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    # member@example.com is in team dev, other@example.com in ops; no static entry names them.
    policy = {"combinator": "and", "rules": [
        on("userTeams", "$identifier", "contains", "dev"),
        on("form", "env", "=", "staging"),
    ]}  # fmt: skip
    await api.define(kafka_workflow(wf_id, permissions={"roles": [], "policy": policy}))
    staging = {"inputs": {"name": "ada", "env": "staging"}}
    run = await api.trigger(wf_id, staging["inputs"], "member")
    assert run["createdBy"] == "member@example.com"
    production = await api.call(
        "POST", f"/v1/workflows/{wf_id}/runs", "member",
        json={"inputs": {"name": "ada", "env": "production"}},
    )  # fmt: skip
    assert production.status_code == 403
    assert "permissions policy does not allow it" in production.json()["message"]
    other = await api.call("POST", f"/v1/workflows/{wf_id}/runs", "other", json=staging)
    assert other.status_code == 403
    # The list shows a workflow to whom its policy may admit (the form aside) only.
    mine = await api.call("GET", "/v1/workflows", "member")
    theirs = await api.call("GET", "/v1/workflows", "other")
    assert wf_id in {w["identifier"] for w in mine.json()["workflows"]}
    assert wf_id not in {w["identifier"] for w in theirs.json()["workflows"]}


async def test_a_policy_is_an_extra_way_in_beside_the_static_entries(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    policy = {"rules": [on("user", "$identifier", "=", "nobody@example.com")]}
    await api.define(kafka_workflow(wf_id, permissions={"users": ["other@example.com"],
                                                        "policy": policy}))  # fmt: skip
    await api.trigger(wf_id, {"name": "ada"}, "other")  # the static entry admits
    denied = await api.call(
        "POST", f"/v1/workflows/{wf_id}/runs", "member", json={"inputs": {"name": "ada"}}
    )
    assert denied.status_code == 403
    await api.trigger(wf_id, {"name": "ada"}, "machine")  # machines and Admins always may


async def test_a_policy_this_server_cannot_evaluate_is_a_422(api: Api, wf_id: str) -> None:
    legacy = {"queries": {"mine": {"combinator": "and", "rules": []}},
              "conditions": [".results.mine.entities | length == 1"]}  # fmt: skip
    response = await api.call(
        "POST", "/v1/workflows",
        json=kafka_workflow(wf_id, permissions={"roles": [], "policy": legacy}),
    )  # fmt: skip
    assert response.status_code == 422
    message = response.json()["message"]
    assert "nodes[0].config.permissions.policy" in message
    assert "queries/conditions form of a policy" in message


async def test_a_policy_reads_the_callers_user_and_team_entities(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    for blueprint, prop in (("_user", "department"), ("_team", "costCenter")):
        body = {"identifier": blueprint, "title": blueprint,
                "schema": {"properties": {prop: {"type": "string"}}}}  # fmt: skip
        created = await api.call("POST", "/v1/blueprints", json=body)
        assert created.status_code in (201, 409), created.text  # kept from an earlier session
    department = f"dept-{wf_id}"
    entities = (("_user", "member@example.com", {"department": department}),
                ("_team", "dev", {"costCenter": department}))  # fmt: skip
    for blueprint, identifier, properties in entities:
        written = await api.call(
            "POST", f"/v1/blueprints/{blueprint}/entities", params={"upsert": "true"},
            json={"identifier": identifier, "properties": properties},
        )  # fmt: skip
        assert written.status_code in (200, 201), written.text
    by_user, by_team = wf_id + "-user", wf_id + "-team"
    user_rule = on("user", "department", "=", department)
    await api.define(kafka_workflow(by_user, permissions={
        "roles": [], "policy": {"rules": [user_rule]}}))  # fmt: skip
    await api.define(kafka_workflow(by_team, permissions={
        "roles": [], "policy": {"rules": [on("userTeams", "costCenter", "contains", department)]}
    }))  # fmt: skip
    for workflow in (by_user, by_team):
        await api.trigger(workflow, {"name": "ada"}, "member")
        other = await api.call(
            "POST", f"/v1/workflows/{workflow}/runs", "other", json={"inputs": {"name": "ada"}}
        )
        assert other.status_code == 403
