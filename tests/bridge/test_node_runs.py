"""PATCH (both paths), logs, lookup by external id, and the completion contract."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from switchyard.engine.service import EngineService
from switchyard.schemas import NodeRunUpdated, encode, node_uid
from tests.bridge.support import (
    Api,
    integration_workflow,
    kafka_workflow,
    new_installation,
    node_run,
)
from tests.helpers import until

DONE = {"status": "COMPLETED", "result": "SUCCESS", "output": {"resourceId": "abc123"},
        "logs": [{"logLevel": "INFO", "log": "done", "tags": {"env": "prod"}}]}  # fmt: skip


async def _completed(api: Api, run_id: str) -> dict[str, Any]:
    return await until(lambda: api.run(run_id), lambda r: r["status"] == "COMPLETED")


async def _complete(api: Api, how: str, wf_id: str) -> dict[str, Any]:
    """Run a workflow whose node is completed by one of the completion paths."""
    if how == "claim-ack-patch":
        installation = new_installation()
        await api.define(integration_workflow(wf_id, installation))
        run = await api.trigger(wf_id, {"name": "ada"})
        claimed = await api.call("POST", "/v1/workflows/runs/claim-pending", "machine",
                                 json={"installationId": installation, "limit": 5})  # fmt: skip
        [item] = claimed.json()["nodeRuns"]
        ack = await api.call("PATCH", "/v1/workflows/runs/ack", "machine",
                             json={"nodeRunIdentifier": item["identifier"]})  # fmt: skip
        assert ack.json() == {"ok": True, "acked": True}
        response = await api.call(
            "PATCH", f"/v1/workflows/nodes/runs/{item['identifier']}", "machine", json=DONE
        )
        assert response.status_code == 200
        return await _completed(api, run["identifier"])
    await api.define(kafka_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "ada"})
    nr = node_run(run, "work")["identifier"]
    if how == "kafka":
        event = NodeRunUpdated.model_validate(
            {**DONE, "runId": run["identifier"], "nodeRunId": nr, "sentAt": datetime.now(UTC)}
        )
        await api.ctx.producer.send_and_wait(
            api.ctx.registry.inbox.name, run["identifier"], encode(event)
        )
    else:
        path = (f"/v1/workflows/nodes/runs/{nr}" if how == "patch-node-run"
                else f"/v1/workflows/runs/{run['identifier']}/nodes/{nr}")  # fmt: skip
        response = await api.call("PATCH", path, "machine", json=DONE)
        assert response.status_code == 200, response.text
        assert response.json() == {"ok": True}
    return await _completed(api, run["identifier"])


def _essence(run: dict[str, Any], node: str) -> dict[str, Any]:
    nr = node_run(run, node)
    return {
        "status": run["status"], "result": run["result"], "nodeStatus": nr["status"],
        "nodeResult": nr["result"], "output": nr["output"],
        "logs": [(line["logLevel"], line["log"], line["tags"]) for line in nr["nodeRunLogs"]
                 if line["log"] == "done"],
        "variables": run["variables"]["outputs"].get(node),
    }  # fmt: skip


@pytest.mark.parametrize(
    "how", ["patch-node-run", "patch-run-node-run", "claim-ack-patch", "kafka"]
)
async def test_every_completion_path_gives_the_same_run(
    api: Api, engine: EngineService, wf_id: str, how: str
) -> None:
    run = await _complete(api, how, wf_id)
    node = "act" if how == "claim-ack-patch" else "work"
    assert _essence(run, node) == {
        "status": "COMPLETED", "result": "SUCCESS", "nodeStatus": "COMPLETED",
        "nodeResult": "SUCCESS", "output": {"resourceId": "abc123"},
        "logs": [("INFO", "done", {"env": "prod"})], "variables": {"resourceId": "abc123"},
    }  # fmt: skip


async def test_patch_validation_and_state(api: Api, engine: EngineService, wf_id: str) -> None:
    await api.define(kafka_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "ada"})
    nr = node_run(run, "work")["identifier"]
    path = f"/v1/workflows/nodes/runs/{nr}"
    cases = [
        ({"status": "COMPLETED"}, "result is required when status is COMPLETED"),
        ({"status": "DONE"}, "body.status"),
        ({"status": "COMPLETED", "result": "MAYBE"}, "body.result"),
        ({"status": "IN_PROGRESS", "output": "text"}, "body.output"),
        ({"status": "IN_PROGRESS", "logs": [{"logLevel": "LOUD"}]}, "body.logs[0].logLevel"),
        ({"status": "IN_PROGRESS", "statusLabel": {"variant": "x"}}, "body.statusLabel.text"),
        ({"status": "IN_PROGRESS", "surprise": 1, "result": "SUCCESS"}, "result is only allowed"),
    ]
    for body, expected in cases:
        response = await api.call("PATCH", path, "machine", json=body)
        assert response.status_code == 422, body
        assert expected in response.json()["message"], response.json()
    assert (
        await api.call("PATCH", "/v1/workflows/nodes/runs/wfnr_bad", json=DONE)
    ).status_code == 422
    unknown = await api.call("PATCH", "/v1/workflows/nodes/runs/wfnr_AAAAAAAAAAAAAAAA", json=DONE)
    assert unknown.status_code == 404
    wrong_run = await api.call(
        "PATCH", f"/v1/workflows/runs/wfr_AAAAAAAAAAAAAAAA/nodes/{nr}", json=DONE
    )
    assert wrong_run.status_code == 404
    assert (await api.call("PATCH", path, "member", json=DONE)).status_code == 403
    # Fields a newer client adds are ignored; statusLabel is Ocean's {text}.
    progress = {"status": "IN_PROGRESS", "externalRunId": f"ext-{wf_id}",
                "logs": [{"logLevel": "INFO", "log": "started"}], "reauthRequired": False,
                "statusLabel": {"text": "Dispatched"}}  # fmt: skip
    assert (await api.call("PATCH", path, "machine", json=progress)).status_code == 200
    logs = {"logs": [{"level": "WARN", "message": "half way"}, {"logLevel": "INFO", "log": "x"}]}
    assert (await api.call("POST", f"{path}/logs", "machine", json=logs)).status_code == 200
    bad_logs = await api.call("POST", f"{path}/logs", "machine", json={"logs": [{"level": "NOPE"}]})
    assert bad_logs.status_code == 422
    await until(
        lambda: api.run(run["identifier"]),
        lambda r: (
            [x["log"] for x in node_run(r, "work")["nodeRunLogs"]][-3:]
            == ["started", "half way", "x"]
            and node_run(r, "work")["statusLabel"] == {"text": "Dispatched", "variant": None}
        ),
    )
    query = {"external_run_id": f"ext-{wf_id}", "include": "nodeConfig"}
    found = await api.call("GET", "/v1/workflows/nodes/runs", "machine", params=query)
    [item] = found.json()["runs"]
    assert found.json()["nodeRuns"] == [item]
    assert item["identifier"] == nr
    assert item["node"]["config"]["type"] == "KAFKA"
    assert item["config"] == item["node"]["config"]
    assert item["nodeUid"] == node_uid(wf_id, "work")
    assert item["status"] == "IN_PROGRESS"
    assert "output" in item
    none = await api.call(
        "GET",
        "/v1/workflows/nodes/runs",
        "machine",
        params={"external_run_id": "never-given", "include": "nodeConfig"},
    )
    assert (none.status_code, none.json()["nodeRuns"]) == (200, [])
    assert (await api.call("PATCH", path, "machine", json=DONE)).status_code == 200
    await _completed(api, run["identifier"])
    frozen = await api.call("PATCH", path, "machine", json=DONE)
    assert frozen.status_code == 409
    assert frozen.json()["error"] == "conflict"


@pytest.mark.usefixtures("engine")
async def test_external_run_id_sent_straight_to_kafka_is_found_by_the_lookup(api: Api) -> None:
    wf_id = f"ext-kafka-{uuid.uuid4().hex[:6]}"
    await api.define(kafka_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "ada"})
    nr = node_run(run, "work")["identifier"]
    event = NodeRunUpdated.model_validate({
        "runId": run["identifier"], "nodeRunId": nr, "status": "IN_PROGRESS",
        "externalRunId": f"job-{wf_id}", "sentAt": datetime.now(UTC),
    })  # fmt: skip
    await api.ctx.producer.send_and_wait(
        api.ctx.registry.inbox.name, run["identifier"], encode(event)
    )
    query = {"external_run_id": f"job-{wf_id}"}
    found = await until(
        lambda: api.call("GET", "/v1/workflows/nodes/runs", "machine", params=query),
        lambda response: bool(response.json()["runs"]),
    )
    [item] = found.json()["runs"]
    assert item["identifier"] == nr
    assert item["externalRunId"] == f"job-{wf_id}"


@pytest.mark.usefixtures("engine")
async def test_output_is_replaced_and_a_completion_without_one_keeps_what_is_stored(
    api: Api,
) -> None:
    wf_id = f"out-{uuid.uuid4().hex[:6]}"
    await api.define(kafka_workflow(wf_id))
    bare = await api.trigger(wf_id, {"name": "ada"})
    progressed = await api.trigger(wf_id, {"name": "bob"})
    done = {"status": "COMPLETED", "result": "SUCCESS", "statusLabel": {"text": "Done"}}

    async def patch(run: dict[str, Any], body: dict[str, Any]) -> None:
        path = f"/v1/workflows/nodes/runs/{node_run(run, 'work')['identifier']}"
        response = await api.call("PATCH", path, "machine", json=body)
        assert response.status_code == 200, response.text

    await patch(bare, done)  # no output ever reported: {}
    for output in ({"a": 1, "b": 2}, {"url": "https://x"}):  # each replaces the last
        await patch(progressed, {"status": "IN_PROGRESS", "output": output})
    await patch(progressed, done)  # without output: the stored one stays
    first = node_run(await _completed(api, bare["identifier"]), "work")
    assert first["output"] == {}
    assert first["statusLabel"] == {"text": "Done", "variant": None}
    second = node_run(await _completed(api, progressed["identifier"]), "work")
    assert second["output"] == {"url": "https://x"}
