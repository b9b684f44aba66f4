"""Approvals (INPUT nodes) on the real stack: the bridge, the engine and the webhook
executor over Kafka and Redis.

Actors (tests/bridge/conftest.py): ``admin`` triggers the runs; the responders are
``member`` (by email) and ``other`` (by its team ``ops``); ``machine`` is no responder.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from switchyard.consumers.webhook import WebhookService
from switchyard.engine.service import EngineService
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from tests.bridge.support import Api, node_run, trigger_node
from tests.helpers import LocalHandler, serving, until


def approval_workflow(
    identifier: str, *, notify: str | None = None, needs: int = 2
) -> dict[str, Any]:
    """trigger → approval (approve: ``needs`` answers, decline: 1) → deploy | abandon."""
    notifications = [
        {"target": "webhook", "url": f"{notify}/hook"},
        # A second one with a body of its own: one node run, two deliveries.
        {"target": "webhook", "url": f"{notify}/chat",
         "body": {"text": "{{ .outputs.trigger.name }}"}},
    ] if notify else []  # fmt: skip
    config = {
        "type": "INPUT",
        "description": "Deploy {{ .outputs.trigger.name }}?",
        "userInputs": {
            "properties": {"reason": {"type": "string", "minLength": 2}},
            "required": ["reason"],
            "buttons": [
                {"identifier": "approve", "label": "Approve"},
                {"identifier": "decline", "label": "Decline", "variant": "DANGER"},
            ],
        },
        "outlets": [
            {"identifier": "approve", "title": "Approved", "numOfResponders": needs},
            {"identifier": "decline", "title": "Declined", "numOfResponders": 1},
        ],
        "responders": {"users": ["member@example.com"], "teams": ["ops"]},
        "notifications": notifications,
    }
    return {
        "identifier": identifier,
        "allowAnyoneToViewRuns": False,
        "nodes": [
            trigger_node(),
            {"identifier": "approval", "title": "Approve the deploy", "config": config},
            {"identifier": "deploy", "config": {"type": "KAFKA"}},
            {"identifier": "abandon", "config": {"type": "KAFKA"}},
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "approval"},
            {"sourceIdentifier": "approval", "sourceOutletIdentifier": "approve",
             "targetIdentifier": "deploy"},
            {"sourceIdentifier": "approval", "sourceOutletIdentifier": "decline",
             "targetIdentifier": "abandon"},
        ],
    }  # fmt: skip


async def respond(
    api: Api, nr: str, who: str, button: str = "approve", **inputs: Any
) -> httpx.Response:
    body = {"buttonIdentifier": button, "inputs": inputs or {"reason": f"{who} says ok"}}
    return await api.call("POST", f"/v1/workflows/nodes/runs/{nr}/respond", who, json=body)


async def _answers(api: Api, run_id: str) -> int:
    output = node_run(await api.run(run_id), "approval")["output"]
    return len(output.get("responses", []))


@pytest.mark.usefixtures("engine")
async def test_two_responders_complete_the_approval_and_the_run_goes_on(
    api: Api, wf_id: str
) -> None:
    await api.define(approval_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "checkout"})
    run_id = run["identifier"]
    waiting = node_run(run, "approval")
    nr = waiting["identifier"]
    assert waiting["status"] == "IN_PROGRESS"
    assert waiting["output"]["description"] == "Deploy checkout?"
    assert [b["identifier"] for b in waiting["output"]["userInputs"]["buttons"]] == [
        "approve",
        "decline",
    ]
    assert [(w["nodeRun"], w["kind"]) for w in run["waitingOn"]] == [(nr, "approval")]

    # A responder who is a Member, did not start the run, on a private workflow: sees it.
    assert (await api.call("GET", f"/v1/workflows/runs/{run_id}", "member")).status_code == 200
    listed = await api.call("GET", f"/v1/workflows/runs?workflowIdentifiers={wf_id}", "member")
    assert [r["identifier"] for r in listed.json()["workflowRuns"]] == [run_id]
    # A PATCH can't complete an approval (only answers do); it may add logs.
    patch = f"/v1/workflows/nodes/runs/{nr}"
    done_patch = {"status": "COMPLETED", "result": "SUCCESS", "output": {}}
    refused = await api.call("PATCH", patch, "machine", json=done_patch)
    assert refused.status_code == 409
    assert "respond" in refused.json()["message"]
    logs = {"status": "IN_PROGRESS", "logs": [{"logLevel": "INFO", "log": "paged the team"}]}
    assert (await api.call("PATCH", patch, "machine", json=logs)).status_code == 200
    # A non-responder gets 403; bad answers are 422 and use up nothing.
    assert (await respond(api, nr, "machine")).status_code == 403
    unknown = await respond(api, nr, "member", "maybe")
    assert unknown.status_code == 422
    assert unknown.json()["message"].startswith("body.buttonIdentifier: must be one of approve")
    short = await respond(api, nr, "member", reason="x")
    assert short.status_code == 422
    assert short.json()["message"].startswith("inputs.reason:")

    first = await respond(api, nr, "member")
    assert first.status_code == 200, first.text
    assert first.json() == {"ok": True}
    # The same responder again: 409 at once, before and after the engine applied it.
    assert (await respond(api, nr, "member", "decline")).status_code == 409
    await until(lambda: _answers(api, run_id), lambda n: n == 1)
    after_one = await api.run(run_id)
    assert node_run(after_one, "approval")["status"] == "IN_PROGRESS"
    again = await respond(api, nr, "member")
    assert again.status_code == 409
    assert "already answered" in again.json()["message"]

    second = await respond(api, nr, "other", reason="ship it")
    assert second.status_code == 200, second.text
    done = await until(
        lambda: api.run(run_id), lambda r: node_run(r, "approval")["status"] == "COMPLETED"
    )
    approval = node_run(done, "approval")
    assert approval["result"] == "SUCCESS"
    output = approval["output"]
    assert output["selectedOutlet"] == {"identifier": "approve", "title": "Approved"}
    assert [
        (r["buttonIdentifier"], r["inputs"], r["submitterInfo"]["submittedBy"])
        for r in output["responses"]
    ] == [
        ("approve", {"reason": "member says ok"}, "member@example.com"),
        ("approve", {"reason": "ship it"}, "other@example.com"),
    ]
    assert all(r["submitterInfo"]["submittedAt"] for r in output["responses"])
    assert [nr_["node"]["identifier"] for nr_ in done["nodeRuns"]] == [
        "trigger",
        "approval",
        "deploy",
    ]
    assert done["variables"]["outputs"]["approval"] == output
    # A third answer, once it is over: 409.
    late = await respond(api, nr, "member")
    assert late.status_code == 409


@pytest.mark.usefixtures("engine")
async def test_concurrent_answers_of_one_responder_get_one_200(api: Api, wf_id: str) -> None:
    await api.define(approval_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "checkout"})
    nr = node_run(run, "approval")["identifier"]
    answers = await asyncio.gather(*(respond(api, nr, "member") for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409]
    await until(lambda: _answers(api, run["identifier"]), lambda n: n == 1)


async def test_unknown_invisible_and_other_node_runs(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    missing = "wfnr_" + "0" * 16
    response = await respond(api, missing, "member")
    assert response.status_code == 404
    await api.define(approval_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "checkout"})
    # The trigger's node run is no INPUT: nothing to answer.
    trigger_nr = node_run(run, "trigger")["identifier"]
    assert (await respond(api, trigger_nr, "admin")).status_code == 409


class _Hook(LocalHandler):
    def do_POST(self) -> None:
        self.record({"path": self.path, "body": self.body()})
        self.answer(200, {"ok": True})


@pytest.fixture
async def executor(bridge_settings: Settings) -> AsyncIterator[None]:
    async with httpx.AsyncClient() as http, EventProducer(bridge_settings) as producer:
        service = WebhookService(bridge_settings, producer, http, lambda: datetime.now(UTC))
        await service.loop.start()
        task = asyncio.create_task(service.loop.run())
        yield
        service.loop.stop_soon()
        await task
        await service.loop.stop()


@pytest.mark.usefixtures("engine", "executor")
async def test_a_webhook_notification_is_sent_and_logged(api: Api, wf_id: str) -> None:
    with serving(_Hook) as (url, received):
        await api.define(approval_workflow(wf_id, notify=url, needs=1))
        run = await api.trigger(wf_id, {"name": "checkout"})
        nr = node_run(run, "approval")["identifier"]
        delivered = await until(
            lambda: asyncio.sleep(0, list(received)), lambda got: len(got) == 2, within=20
        )
    [hook] = [d for d in delivered if d["path"] == "/hook"]
    [chat] = [d for d in delivered if d["path"] == "/chat"]
    assert chat["body"] == {"text": "checkout"}
    body = hook["body"]
    assert hook["path"] == "/hook"
    assert body["type"] == "INPUT_REQUESTED"
    assert body["description"] == "Deploy checkout?"
    assert body["context"]["nodeRunId"] == nr
    assert body["respond"] == {"method": "POST", "path": f"/v1/workflows/nodes/runs/{nr}/respond"}

    def logged(r: dict[str, Any]) -> bool:
        logs = [line["log"] for line in node_run(r, "approval")["nodeRunLogs"]]
        return all(
            any(line.startswith(f"notification {n}: POST") and "answered 200" in line
                for line in logs)
            for n in (0, 1)
        )  # fmt: skip

    waiting = await until(lambda: api.run(run["identifier"]), logged, within=20)
    assert node_run(waiting, "approval")["status"] == "IN_PROGRESS"  # a log, not an outcome
    assert (await respond(api, nr, "other", "decline")).status_code == 200
    done = await until(lambda: api.run(run["identifier"]),
                       lambda r: node_run(r, "approval")["status"] == "COMPLETED")  # fmt: skip
    assert node_run(done, "approval")["output"]["selectedOutlet"]["identifier"] == "decline"
