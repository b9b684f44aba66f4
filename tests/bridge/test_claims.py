"""Claim and ack: atomic, exclusive, visibility timeout, 409 on a second ack; the
claim body and items as Port's workers send and parse them (nodeUid, exclude)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from switchyard.engine.service import EngineService
from switchyard.engine.store import keys
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas import node_uid
from tests.bridge.support import Api, integration_workflow, new_installation


async def _pending(api: Api, wf_id: str, count: int) -> tuple[str, list[dict[str, Any]]]:
    installation = new_installation()
    await api.define(integration_workflow(wf_id, installation))
    runs = [await api.trigger(wf_id, {"name": f"n{i}"}) for i in range(count)]
    return installation, runs


async def _claim(api: Api, installation: str, path: str = "/v1/workflows/runs/claim-pending",
                 **extra: Any) -> list[dict[str, Any]]:  # fmt: skip
    body = {"installationId": installation, "limit": 10, "visibilityTimeoutMs": 1000, **extra}
    response = await api.call("POST", path, "machine", json=body)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["nodeRuns"]
    return items


async def test_claim_returns_rendered_config(api: Api, engine: EngineService, wf_id: str) -> None:
    installation, runs = await _pending(api, wf_id, 1)
    [item] = await _claim(api, installation, "/v1/org/my-org/workflows/runs/claim-pending")
    assert item["config"]["type"] == "INTEGRATION_ACTION"
    assert item["config"]["integrationActionExecutionProperties"] == {"ref": "n0"}
    assert item["node"]["config"] == item["config"]
    assert item["installationId"] == installation
    assert item["pendingExecution"] is True
    assert item["workflowRun"]["identifier"] == runs[0]["identifier"]
    assert item["nodeUid"] == node_uid(wf_id, "act")
    assert item["status"] == "IN_PROGRESS"
    assert item["output"] == {}
    assert item["config"]["integrationProvider"] == "github"
    assert item["config"]["installationId"] == installation
    assert await _claim(api, installation) == []  # hidden until the timeout


async def test_claim_takes_what_ocean_sends(api: Api, engine: EngineService, wf_id: str) -> None:
    installation, _ = await _pending(api, wf_id, 1)
    body = {"installationId": installation, "limit": 300, "somethingNew": {"a": 1}}
    response = await api.call("POST", "/v1/workflows/runs/claim-pending", "machine", json=body,
                              headers={"x-port-reserved-usage": "true"})  # fmt: skip
    assert response.status_code == 200, response.text
    [item] = response.json()["nodeRuns"]
    ack = await api.call("PATCH", "/v1/workflows/runs/ack", "machine",
                         json={"nodeRunIdentifier": item["identifier"], "more": True},
                         headers={"x-port-reserved-usage": "true"})  # fmt: skip
    assert ack.json() == {"ok": True, "acked": True}
    # Found by the external id it reports as soon as the PATCH answers, as Ocean's
    # executors look it up.
    path = f"/v1/workflows/nodes/runs/{item['identifier']}"
    external = f"job-{item['identifier']}"
    started = await api.call("PATCH", path, "machine", json={
        "status": "IN_PROGRESS", "externalRunId": external, "statusLabel": {"text": "Started"},
    })  # fmt: skip
    assert started.status_code == 200, started.text
    query = {"external_run_id": external, "include": "nodeConfig"}
    found = await api.call("GET", "/v1/workflows/nodes/runs", "machine", params=query)
    [again] = found.json()["nodeRuns"]
    assert (again["identifier"], again["externalRunId"]) == (item["identifier"], external)
    assert again["nodeUid"] == item["nodeUid"]
    assert again["config"] == again["node"]["config"] == item["config"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _claimable(api: Api, installation: str) -> list[tuple[str, str]]:
    """The node runs pending for ``installation``, each with the tag of the partition
    whose claim set holds it (its run's), read from every partition."""
    partitions = api.ctx.runs.partitions
    found: list[tuple[str, str]] = []
    for tag in (partition_tag(p, partitions) for p in range(partitions)):
        members = await api.ctx.redis.zrange(keys.claims(installation, tag), 0, -1)
        found += [(_text(m), tag) for m in members]
    return found


async def test_exclude_by_node_uid_or_node_run_id(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    installation, _ = await _pending(api, wf_id, 2)
    uid = node_uid(wf_id, "act")
    claimable = await _claimable(api, installation)
    pending = [nr for nr, _ in claimable]
    # The engine stored each node run's uid when it made it claimable.
    uids = [await api.ctx.redis.hget(keys.claim(nr, tag), "uid") for nr, tag in claimable]
    assert uids == [uid.encode()] * 2
    # So the claim script skips them by uid, and by node-run id.
    assert await _claim(api, installation, exclude=[uid]) == []
    [only] = await _claim(api, installation, exclude=[pending[0]])
    assert (only["identifier"], only["nodeUid"]) == (pending[1], uid)


async def test_a_claim_record_without_a_uid_learns_it_on_its_first_claim(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    """Records the engine wrote before it stored uids: found excluded, handed back."""
    installation, _ = await _pending(api, wf_id, 1)
    [(node_run, tag)] = await _claimable(api, installation)
    await api.ctx.redis.hdel(keys.claim(node_run, tag), "uid")
    uid = node_uid(wf_id, "act")
    assert await _claim(api, installation, exclude=[uid]) == []  # handed back at once
    assert await api.ctx.redis.hget(keys.claim(node_run, tag), "uid") == uid.encode()
    [item] = await _claim(api, installation)
    assert item["identifier"] == node_run


async def test_concurrent_claims_never_share(api: Api, engine: EngineService, wf_id: str) -> None:
    installation, _ = await _pending(api, wf_id, 4)
    results = await asyncio.gather(*(_claim(api, installation, limit=1) for _ in range(6)))
    claimed = [item["identifier"] for items in results for item in items]
    assert len(claimed) == 4
    assert len(set(claimed)) == 4


async def test_unacked_claim_reappears_after_timeout(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    installation, _ = await _pending(api, wf_id, 1)
    [first] = await _claim(api, installation)
    real = api.ctx.clock
    api.ctx.clock = lambda: real() + timedelta(seconds=2)  # past the 1 s visibility timeout
    [again] = await _claim(api, installation)
    assert again["identifier"] == first["identifier"]
    ack = await api.call("PATCH", "/v1/org/o/workflows/runs/ack", "machine",
                         json={"nodeRunIdentifier": first["identifier"]})  # fmt: skip
    assert ack.status_code == 200
    second = await api.call("PATCH", "/v1/workflows/runs/ack", "machine",
                            json={"nodeRunIdentifier": first["identifier"]})  # fmt: skip
    assert second.status_code == 409
    api.ctx.clock = lambda: real() + timedelta(minutes=30)
    assert await _claim(api, installation) == []  # acked: never again


async def test_claim_and_ack_errors(api: Api) -> None:
    path = "/v1/workflows/runs/claim-pending"
    for body in ({}, {"installationId": "i", "limit": 0}, {"installationId": "i", "limit": 1001},
                 {"installationId": "i", "visibilityTimeoutMs": 999},
                 {"installationId": "i", "visibilityTimeoutMs": 600_001}):  # fmt: skip
        assert (await api.call("POST", path, "machine", json=body)).status_code == 422, body
    assert (await api.call("POST", path, "member", json={"installationId": "i"})).status_code == 403
    ack = "/v1/workflows/runs/ack"
    assert (
        await api.call("PATCH", ack, "machine", json={"nodeRunIdentifier": "x"})
    ).status_code == 422
    unknown = await api.call(
        "PATCH", ack, "machine", json={"nodeRunIdentifier": "wfnr_AAAAAAAAAAAAAAAA"}
    )
    assert unknown.status_code == 404
    assert (
        await api.call("PATCH", ack, "member", json={"nodeRunIdentifier": "wfnr_AAAAAAAAAAAAAAAA"})
    ).status_code == 403
