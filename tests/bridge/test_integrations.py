"""What an Ocean integration calls around the workflow endpoints: its registry entry,
the organization, and action runs (never pending), over real Redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson

from switchyard.bridge.integrations import DEFAULT_CONFIG
from switchyard.engine.store import keys
from tests.bridge.support import Api


# What Ocean 0.56's create_integration sends.
def _ocean_body(identifier: str) -> dict[str, Any]:
    return {
        "installationId": identifier, "installationAppType": "switchyard-test",
        "version": "0.1.0", "changelogDestination": {}, "config": {},
        "actionsProcessingEnabled": True, "incrementalSyncEnabled": False,
        "createPortResourcesOrigin": "Default",
    }  # fmt: skip


async def test_register_get_and_patch_an_integration(api: Api) -> None:
    identifier = f"ocean-{uuid.uuid4().hex[:8]}"
    path = f"/v1/integration/{identifier}"
    missing = await api.call("GET", path, "machine", params={"oceanCoreVersion": "0.56.2"})
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    created = await api.call("POST", "/v1/integration", "machine", json=_ocean_body(identifier))
    assert created.status_code == 201, created.text
    integration = created.json()["integration"]
    assert integration["identifier"] == integration["installationId"] == identifier
    assert integration["config"] == DEFAULT_CONFIG  # created with {}: the default, not empty
    assert integration["installationAppType"] == "switchyard-test"
    assert integration["logAttributes"]["ingestUrl"].endswith(f"{path}/logs")
    again = await api.call("POST", "/v1/integration", "machine", json=_ocean_body(identifier))
    assert again.status_code == 409

    patched = await api.call("PATCH", path, "machine", json={
        "version": "0.2.0", "processingMode": "dsp", "arePortResourcesInitialized": True,
        "somethingNew": 1,
    })  # fmt: skip
    assert patched.status_code == 200, patched.text
    got = (await api.call("GET", path, "admin")).json()["integration"]
    assert (got["version"], got["processingMode"], got["arePortResourcesInitialized"]) == (
        "0.2.0", "dsp", True,
    )  # fmt: skip
    assert "somethingNew" not in got
    config = {"resources": [{"kind": "repo"}]}
    replaced = await api.call("PATCH", f"{path}/config", "machine", json={"config": config})
    assert replaced.json()["integration"]["config"] == config
    logs = await api.call("POST", f"{path}/logs", "machine", json={"logs": [{"message": "hi"}]})
    assert logs.json() == {"ok": True}
    state = await api.call("PATCH", f"{path}/resync-state", "machine", json={
        "status": "running", "lastResyncEnd": None, "intervalInMinuets": None, "new": 1,
    })  # fmt: skip
    resync = state.json()["integration"]["resyncState"]
    assert (resync["status"], bool(resync["updatedAt"])) == ("running", True)
    metrics = state.json()["integration"]["metricAttributes"]["ingestUrl"]
    assert metrics.endswith(f"{path}/metrics")
    for method, where in (("POST", "heartbeat"), ("POST", "syncMetrics"),
                          ("PUT", "syncMetrics/resync/e%2F1/kind/repo")):  # fmt: skip
        sent = await api.call(method, f"{path}/metrics/{where}", "machine", json={"x": 1})
        assert sent.json() == {"ok": True}, where
    request = await api.call("GET", f"{path}/resync-request", "machine")
    assert request.json() == {"ok": True, "request": None}
    provision = await api.call("GET", "/v1/integration/provision-enabled", "machine")
    assert provision.json() == {"ok": True, "integrations": []}


async def test_integration_errors(api: Api) -> None:
    bad = await api.call("POST", "/v1/integration", "machine", json={"installationAppType": "x"})
    assert bad.status_code == 422
    assert "body.installationId: is required" in bad.json()["message"]
    wrong = await api.call("POST", "/v1/integration", "machine",
                           json={"installationId": "x y", "version": 3})  # fmt: skip
    assert "body.installationId" in wrong.json()["message"]
    assert "body.version" in wrong.json()["message"]
    never = f"/v1/integration/never-{uuid.uuid4().hex[:6]}"
    assert (await api.call("PATCH", never, "machine", json={"version": "1"})).status_code == 404
    assert (await api.call("GET", never, "member")).status_code == 403


async def test_organization_settings_merge(api: Api) -> None:
    # Redis is shared with the engine's tests, which read these settings: touch only
    # keys of this test's own, and put the feature flags back.
    mine, other = f"test-{uuid.uuid4().hex[:6]}", f"test-{uuid.uuid4().hex[:6]}"
    before = (await api.call("GET", "/v1/organization", "machine")).json()["organization"]
    assert before["id"]
    assert isinstance(before["featureFlags"], list)
    first = await api.call("PATCH", "/v1/organization", "machine",
                           json={"settings": {mine: "POLLING"}})  # fmt: skip
    assert first.status_code == 200, first.text
    second = await api.call(
        "PATCH",
        "/v1/organization",
        "admin",
        json={"settings": {other: {"a": []}}, "featureFlags": ["X"], "new": 1},
    )
    assert second.status_code == 200, second.text
    org = (await api.call("GET", "/v1/organization", "machine")).json()["organization"]
    assert (org["settings"][mine], org["settings"][other]) == ("POLLING", {"a": []})
    assert org["featureFlags"] == ["X"]
    stored = await api.ctx.redis.hgetall(keys.ORG)
    assert orjson.loads(stored[b"settings"])[mine] == "POLLING"
    assert orjson.loads(stored[b"featureFlags"]) == ["X"]
    restored = await api.call("PATCH", "/v1/organization", "machine",
                              json={"featureFlags": before["featureFlags"]})  # fmt: skip
    assert restored.status_code == 200
    bad = await api.call("PATCH", "/v1/organization", "machine", json={"settings": [1]})
    assert bad.status_code == 422
    assert "body.settings" in bad.json()["message"]
    assert (await api.call("GET", "/v1/organization", "member")).status_code == 403


async def test_concurrent_organization_patches_lose_none_of_each_others_keys(api: Api) -> None:
    mine = [f"test-{uuid.uuid4().hex[:6]}" for _ in range(20)]
    answers = await asyncio.gather(*(
        api.call("PATCH", "/v1/organization", "machine", json={"settings": {key: n}})
        for n, key in enumerate(mine)
    ))  # fmt: skip
    assert [a.status_code for a in answers] == [200] * len(mine)
    org = (await api.call("GET", "/v1/organization", "machine")).json()["organization"]
    assert [org["settings"].get(key) for key in mine] == list(range(len(mine)))


async def test_action_runs_are_never_pending(api: Api) -> None:
    body = {"installationId": "i", "limit": 300, "visibilityTimeoutMs": 60000}
    claimed = await api.call("POST", "/v1/actions/runs/claim-pending", "machine", json=body,
                             headers={"x-port-reserved-usage": "true"})  # fmt: skip
    assert claimed.json() == {"ok": True, "runs": []}
    found = await api.call("GET", "/v1/actions/runs", "machine",
                           params={"version": "v2", "external_run_id": "x"})  # fmt: skip
    assert found.json() == {"ok": True, "runs": []}
    ack = await api.call("PATCH", "/v1/actions/runs/ack", "machine", json={"runId": "r_1"})
    assert ack.status_code == 404
    bad = await api.call("POST", "/v1/actions/runs/claim-pending", "machine", json={"limit": 0})
    assert bad.status_code == 422
