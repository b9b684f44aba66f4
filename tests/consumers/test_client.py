"""The runs API client against the real bridge: every call, typed errors, token refresh."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from switchyard.consumers import ApiError, RunsClient
from switchyard.schemas import LogEntry
from tests.consumers.stack import Api
from tests.helpers import until
from tests.integration.engine_support import Driver

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("engine")]


def _workflow(identifier: str) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
                "properties": {"service": {"type": "string"}}, "required": ["service"]}}},
            {"identifier": "work", "config": {"type": "KAFKA", "payload": {}}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
    }  # fmt: skip


async def test_trigger_list_logs_update_and_cancel(client: RunsClient, driver: Driver) -> None:
    workflow = f"client-{uuid.uuid4().hex[:8]}"
    await driver.define(_workflow(workflow))
    first = await client.trigger(workflow, {"service": "api"})
    second = await client.trigger(workflow, {"service": "web"})
    assert first.run is not None
    assert first.run.status == "IN_PROGRESS"

    listed = await client.list_runs(workflow_identifiers=[workflow], statuses=["IN_PROGRESS"])
    assert [r.identifier for r in listed] == [second.run_id, first.run_id]  # newest first

    work = next(nr for nr in first.run.node_runs if nr.node.identifier == "work")
    await client.add_logs(work.identifier, [LogEntry(log_level="INFO", log="half way")])
    await client.update_node_run(
        work.identifier, status="COMPLETED", result="SUCCESS", output={"ok": True},
        external_run_id="job-1",
    )  # fmt: skip
    done = await until(
        lambda: client.get_run(first.run_id), lambda r: r.status == "COMPLETED", within=20
    )
    finished = next(nr for nr in done.node_runs if nr.node.identifier == "work")
    assert (done.result, finished.output, finished.external_run_id) == (
        "SUCCESS",
        {"ok": True},
        "job-1",
    )
    assert "half way" in [line.log for line in finished.node_run_logs]
    assert [r.identifier for r in await client.list_runs(
        workflow_identifiers=[workflow], results=["SUCCESS"])] == [first.run_id]  # fmt: skip

    await client.cancel(second.run_id, force=True)
    cancelled = await until(
        lambda: client.get_run(second.run_id), lambda r: r.status == "COMPLETED", within=20
    )
    assert cancelled.result == "CANCELLED"
    with pytest.raises(ApiError) as caught:
        await client.cancel(second.run_id)
    assert caught.value.status_code == 409
    assert second.run_id in caught.value.message


async def test_rerun_whole_and_from_a_node(client: RunsClient, driver: Driver) -> None:
    workflow = f"client-{uuid.uuid4().hex[:8]}"
    await driver.define(_workflow(workflow))
    first = await client.trigger(workflow, {"service": "api"})
    with pytest.raises(ApiError) as running:
        await client.rerun(first.run_id)
    assert running.value.status_code == 409  # in progress, and no force
    assert first.run is not None
    work = next(nr for nr in first.run.node_runs if nr.node.identifier == "work")
    await client.update_node_run(work.identifier, status="COMPLETED", result="FAILED")
    await until(lambda: client.get_run(first.run_id), lambda r: r.status == "COMPLETED")

    again = await client.rerun(first.run_id, inputs={"service": "web"})
    assert again.run is not None
    assert again.run.rerun_of is not None
    assert (again.run.rerun_of.identifier, again.run.rerun_of.from_node) == (first.run_id, None)
    assert again.run.variables.outputs["trigger"] == {"service": "web"}
    partial = await client.rerun(first.run_id, from_node="work")
    assert partial.run is not None
    trigger = next(nr for nr in partial.run.node_runs if nr.node.identifier == "trigger")
    assert trigger.reused_from is not None  # the same inputs: reused
    assert [w.kind for w in partial.run.waiting_on] == ["worker"]  # work restarted


async def test_errors_carry_the_api_code_and_message(client: RunsClient) -> None:
    with pytest.raises(ApiError) as missing:
        await client.get_run("wfr_AAAAAAAAAAAAAAAA")
    assert (missing.value.status_code, missing.value.error) == (404, "not_found")
    assert "wfr_AAAAAAAAAAAAAAAA" in missing.value.message
    with pytest.raises(ApiError) as bad:
        await client.trigger(f"missing-{uuid.uuid4().hex[:6]}", {})
    assert bad.value.status_code == 404


async def test_wrong_credentials_raise_401(api: Api) -> None:
    async with RunsClient(api.url, api.client_id, "not-the-secret") as client:
        with pytest.raises(ApiError) as caught:
            await client.get_run("wfr_AAAAAAAAAAAAAAAA")
    assert caught.value.status_code == 401


async def test_the_token_is_refreshed_before_expiry_and_after_a_401(api: Api) -> None:
    fetched: list[str] = []

    async def count(request: httpx.Request) -> None:
        if request.url.path == "/v1/auth/access_token":
            fetched.append(request.url.path)

    now = [0.0]
    http = httpx.AsyncClient(base_url=api.url, event_hooks={"request": [count]})
    async with http, RunsClient(api.url, api.client_id, api.client_secret, http=http,
                                clock=lambda: now[0]) as client:  # fmt: skip
        await client.list_runs(limit=1)
        await client.list_runs(limit=1)
        assert len(fetched) == 1  # cached
        now[0] += 24 * 3600  # past any token's lifetime
        await client.list_runs(limit=1)
        assert len(fetched) == 2
        client._token = "revoked-or-forged"  # the server answers 401: fetch anew, once
        await client.list_runs(limit=1)
        assert len(fetched) == 3
