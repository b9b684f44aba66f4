"""``POST /v1/workflows/runs/{wfr}/rerun``: whole and partial re-runs, versions, force,
and every refusal (422, 404, 403, 409), each naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from switchyard.engine.service import EngineService
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas.settings import Settings
from tests.bridge.support import Api, kafka_workflow, node_run, trigger_node
from tests.helpers import until

DONE = {"status": "COMPLETED", "result": "SUCCESS", "output": {"ok": 1}}
FAILED = {"status": "COMPLETED", "result": "FAILED", "output": {"error": {"message": "boom"}}}


def chain_workflow(identifier: str, **extra: Any) -> dict[str, Any]:
    """trigger → first → second, both KAFKA nodes (completed by PATCH in the tests)."""
    return {
        "identifier": identifier,
        "nodes": [
            trigger_node(),
            {"identifier": "first", "config": {"type": "KAFKA", "payload": {}}},
            {"identifier": "second", "config": {"type": "KAFKA",
                                                "payload": {"n": "{{ .outputs.first.n }}"}}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "first"},
                        {"sourceIdentifier": "first", "targetIdentifier": "second"}],
        **extra,
    }  # fmt: skip


async def _patch(api: Api, run: dict[str, Any], node: str, body: dict[str, Any]) -> None:
    waiting = await until(
        lambda: api.run(run["identifier"]),
        lambda r: any(
            nr["node"]["identifier"] == node and nr["status"] == "IN_PROGRESS"
            for nr in r["nodeRuns"]
        ),
    )
    nr = node_run(waiting, node)["identifier"]
    response = await api.call("PATCH", f"/v1/workflows/nodes/runs/{nr}", "machine", json=body)
    assert response.status_code == 200, response.text


async def _completed(api: Api, run_id: str) -> dict[str, Any]:
    return await until(lambda: api.run(run_id), lambda r: r["status"] == "COMPLETED")


async def _finished_run(api: Api, wf: str, inputs: dict[str, Any], who: str = "admin") -> str:
    """A COMPLETED/SUCCESS run of a ``kafka_workflow``."""
    run = await api.trigger(wf, inputs, who)
    await _patch(api, run, "work", DONE)
    await _completed(api, run["identifier"])
    return str(run["identifier"])


async def _rerun(api: Api, run_id: str, who: str = "admin", **body: Any) -> dict[str, Any]:
    response = await api.call("POST", f"/v1/workflows/runs/{run_id}/rerun", who, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["ok"] is True
    run: dict[str, Any] = response.json()["workflowRun"]
    return run


async def _refused(api: Api, run_id: str, status: int, who: str = "admin", **body: Any) -> str:
    response = await api.call("POST", f"/v1/workflows/runs/{run_id}/rerun", who, json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["ok"] is False
    assert set(answer) == {"ok", "error", "message"}
    message: str = answer["message"]
    return message


# -- re-runs the engine makes ------------------------------------------------------------


async def test_whole_rerun_repeats_the_inputs_and_links_the_old_run(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    old = await _finished_run(api, wf_id, {"name": "ada", "env": "staging"})
    new = await _rerun(api, old)
    assert new["identifier"] != old
    assert new["rerunOf"] == {"identifier": old, "fromNode": None}
    assert new["status"] == "IN_PROGRESS"
    assert new["workflow"] == {"identifier": wf_id, "version": 1}
    assert new["createdBy"] == "admin@example.com"
    assert node_run(new, "trigger")["output"] == {"name": "ada", "env": "staging"}
    assert node_run(new, "work")["status"] == "IN_PROGRESS"
    assert all(nr["reusedFrom"] is None for nr in new["nodeRuns"])
    assert [w["kind"] for w in new["waitingOn"]] == ["worker"]
    assert await api.run(new["identifier"]) == new
    old_run = await api.run(old)
    assert (old_run["status"], old_run["result"], old_run["rerunOf"]) == (
        "COMPLETED", "SUCCESS", None,
    )  # fmt: skip


async def test_a_rerun_without_a_body_is_a_whole_rerun(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    old = await _finished_run(api, wf_id, {"name": "ada"})
    response = await api.call("POST", f"/v1/workflows/runs/{old}/rerun")
    assert response.status_code == 201, response.text
    assert response.json()["workflowRun"]["rerunOf"] == {"identifier": old, "fromNode": None}


async def test_rerun_with_new_inputs(api: Api, engine: EngineService, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id))
    old = await _finished_run(api, wf_id, {"name": "ada"})
    new = await _rerun(api, old, inputs={"name": "bob", "count": 2})
    assert node_run(new, "trigger")["output"] == {"name": "bob", "count": 2}
    assert new["rerunOf"]["identifier"] == old


async def test_the_creator_may_rerun_their_own_run(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id, permissions={"roles": ["Member"]}))
    old = await _finished_run(api, wf_id, {"name": "ada"}, who="member")
    assert "may not re-run" in await _refused(api, old, 403, "other")  # sees it, not theirs
    new = await _rerun(api, old, "member")
    assert new["createdBy"] == "member@example.com"
    machine = await _rerun(api, old, "machine")
    assert machine["createdBy"] == "ci-bot"


async def test_partial_rerun_reuses_the_upstream_and_restarts_at_from_node(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(chain_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "ada"})
    await _patch(api, run, "first", {**DONE, "output": {"n": 7}})
    await _patch(api, run, "second", FAILED)
    old = await _completed(api, run["identifier"])
    assert old["result"] == "FAILED"
    new = await _rerun(api, old["identifier"], fromNode="second")
    assert new["rerunOf"] == {"identifier": old["identifier"], "fromNode": "second"}
    for node in ("trigger", "first"):
        copy, original = node_run(new, node), node_run(old, node)
        assert copy["reusedFrom"] == original["identifier"]
        assert copy["identifier"] != original["identifier"]
        assert (copy["status"], copy["result"]) == ("COMPLETED", "SUCCESS")
        assert copy["output"] == original["output"]
    assert new["variables"]["outputs"]["first"] == {"n": 7}
    second = node_run(new, "second")
    assert (second["status"], second["reusedFrom"]) == ("IN_PROGRESS", None)
    assert [w["nodeRun"] for w in new["waitingOn"]] == [second["identifier"]]
    await _patch(api, new, "second", DONE)
    done = await _completed(api, new["identifier"])
    assert done["result"] == "SUCCESS"


async def test_force_reruns_a_run_in_progress_after_cancelling_it(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    old = (await api.trigger(wf_id, {"name": "ada"}))["identifier"]
    assert "body.force" in await _refused(api, old, 409)
    new = await _rerun(api, old, force=True)
    assert new["rerunOf"] == {"identifier": old, "fromNode": None}
    cancelled = await _completed(api, old)
    assert cancelled["result"] == "CANCELLED"
    assert node_run(cancelled, "work")["result"] == "CANCELLED"


async def test_pinned_or_latest_version(api: Api, engine: EngineService, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id))
    old = await _finished_run(api, wf_id, {"name": "ada"})
    updated = kafka_workflow(wf_id)
    updated["nodes"][1]["title"] = "Work, v2"
    assert (await api.call("PUT", f"/v1/workflows/{wf_id}", json=updated)).status_code == 200
    pinned = await _rerun(api, old)
    assert pinned["workflow"]["version"] == 1
    latest = await _rerun(api, old, version="latest")
    assert latest["workflow"]["version"] == 2
    assert node_run(latest, "work")["nodeTitle"] == "Work, v2"


async def test_latest_must_accept_the_old_inputs_or_be_given_new_ones(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    old = await _finished_run(api, wf_id, {"name": "ada"})
    stricter = kafka_workflow(wf_id)
    stricter["nodes"][0]["config"]["userInputs"]["required"] = ["name", "env"]
    assert (await api.call("PUT", f"/v1/workflows/{wf_id}", json=stricter)).status_code == 200
    message = await _refused(api, old, 422, version="latest")
    assert message.startswith("body.inputs: left out")
    assert "inputs.env: is required" in message
    await _rerun(api, old)  # pinned: the version the inputs were validated against
    new = await _rerun(api, old, version="latest", inputs={"name": "ada", "env": "production"})
    assert new["workflow"]["version"] == 2


async def test_a_deleted_workflow_has_no_latest_version(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    old = await _finished_run(api, wf_id, {"name": "ada"})
    assert (await api.call("DELETE", f"/v1/workflows/{wf_id}")).status_code == 200
    message = await _refused(api, old, 422, version="latest")
    assert message.startswith("body.version:")
    assert "deleted" in message
    # Its runs stay readable; a pinned re-run of one still runs that version.
    assert (await _rerun(api, old))["workflow"]["version"] == 1


async def test_without_engine_the_rerun_answers_202(
    api: Api, bridge_settings: Settings, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    with JqTemplates(TemplateLimits.from_settings(bridge_settings)) as templates:
        async with EngineService(bridge_settings, templates):
            old = await _finished_run(api, wf_id, {"name": "ada"})
    api.ctx.settings = api.ctx.settings.model_copy(update={"trigger_wait_ms": 50})
    response = await api.call("POST", f"/v1/workflows/runs/{old}/rerun", json={})
    assert response.status_code == 202, response.text
    new_id = response.json()["workflowRun"]["identifier"]
    assert new_id != old
    assert response.headers["Location"] == f"/v1/workflows/runs/{new_id}"


# -- refusals ----------------------------------------------------------------------------


async def test_malformed_missing_and_invisible_runs(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    assert "run_id" in await _refused(api, "wfr_short", 422)
    assert "not found" in await _refused(api, "wfr_AAAAAAAAAAAAAAAA", 404)
    await api.define(kafka_workflow(wf_id, anyone=False))
    hidden = await _finished_run(api, wf_id, {"name": "ada"})
    assert "not found" in await _refused(api, hidden, 404, "member")


async def test_a_viewer_who_may_not_cancel_may_not_rerun(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))  # anyone may view its runs
    old = await _finished_run(api, wf_id, {"name": "ada"})
    assert (await api.call("GET", f"/v1/workflows/runs/{old}", "member")).status_code == 200
    message = await _refused(api, old, 403, "member")
    assert message == (
        f"member@example.com may not re-run run {old} (its creator, Admins and machines may)"
    )


async def test_a_run_in_progress_is_409_without_force(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "ada"})
    message = await _refused(api, run["identifier"], 409)
    assert "is IN_PROGRESS" in message
    assert "body.force: true" in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"surprise": 1}, "body.surprise: is not a known field"),
        ({"version": "newest"}, "body.version"),
        ({"force": "maybe"}, "body.force"),
        ({"inputs": []}, "body.inputs"),
        ({"fromNode": "no spaces allowed"}, "body.fromNode"),
    ],
)
async def test_malformed_bodies(
    api: Api, engine: EngineService, wf_id: str, body: dict[str, Any], expected: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    old = await _finished_run(api, wf_id, {"name": "ada"})
    assert expected in await _refused(api, old, 422, **body)


async def test_inputs_are_validated_naming_each_field_under_body(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    old = await _finished_run(api, wf_id, {"name": "ada"})
    message = await _refused(api, old, 422, inputs={"env": "prod", "count": "three", "extra": 1})
    for field in (
        "body.inputs.name: is required",
        "body.inputs.env: must be one of staging, production",
        "body.inputs.count: must be a number",
        "body.inputs.extra: is not an input",
    ):
        assert field in message


async def test_from_node_must_be_a_non_trigger_node_that_ran(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(chain_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "ada"})
    await _patch(api, run, "first", FAILED)  # onFailure terminate: second never runs
    old = (await _completed(api, run["identifier"]))["identifier"]
    assert await _refused(api, old, 422, fromNode="ghost") == (
        f"body.fromNode: 'ghost' is not a node of {wf_id} v1"
    )
    assert "body.fromNode: 'trigger' is a trigger" in await _refused(
        api, old, 422, fromNode="trigger"
    )
    assert await _refused(api, old, 422, fromNode="second") == (
        f"body.fromNode: 'second' did not run in {old} (nodes that ran: trigger, first)"
    )
    new = await _rerun(api, old, fromNode="first")
    assert node_run(new, "first")["reusedFrom"] is None
    assert (
        node_run(new, "trigger")["reusedFrom"]
        == node_run(await api.run(old), "trigger")["identifier"]
    )


async def test_from_node_is_checked_in_the_version_used(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(chain_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "ada"})
    await _patch(api, run, "first", DONE)
    await _patch(api, run, "second", DONE)
    old = (await _completed(api, run["identifier"]))["identifier"]
    shorter = chain_workflow(wf_id)
    shorter["nodes"] = shorter["nodes"][:2]
    shorter["connections"] = shorter["connections"][:1]
    assert (await api.call("PUT", f"/v1/workflows/{wf_id}", json=shorter)).status_code == 200
    assert await _refused(api, old, 422, fromNode="second", version="latest") == (
        f"body.fromNode: 'second' is not a node of {wf_id} v2"
    )
    assert (await _rerun(api, old, fromNode="second"))["workflow"]["version"] == 1


def test_the_openapi_document_shows_rerun_stuck_and_the_run_control_fields(api: Api) -> None:
    document = api.app.openapi()
    rerun = document["paths"]["/v1/workflows/runs/{run_id}/rerun"]["post"]
    assert rerun["summary"]
    assert "fromNode" in rerun["description"]
    assert set(rerun["responses"]) >= {"201", "202", "403", "404", "409", "422"}
    listing = document["paths"]["/v1/workflows/runs"]["get"]
    stuck = next(p for p in listing["parameters"] if p["name"] == "stuck")
    assert "Admins and machines" in stuck["description"]
    schemas = document["components"]["schemas"]
    assert set(schemas["RerunRequest"]["properties"]) == {"inputs", "fromNode", "version", "force"}
    assert {"waitingOn", "rerunOf"} <= set(schemas["WorkflowRun"]["properties"])
    assert {"attempt", "retryOf", "reusedFrom"} <= set(schemas["NodeRun"]["properties"])
    assert set(schemas["Wait"]["properties"]) == {"nodeRun", "kind", "deadline"}
    assert set(schemas["RerunOf"]["properties"]) == {"identifier", "fromNode"}
