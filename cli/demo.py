"""``switchyard demo``: one sample workflow end to end through the runs API.

What a platform team's first hour looks like: define a workflow, trigger a run,
play the external system that completes its KAFKA node (the seed's "External
processing" example, with a PATCH), and print the finished run.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from switchyard.schemas.settings import Settings

WORKFLOW_ID = "switchyard-demo"

WORKFLOW: dict[str, Any] = {
    "identifier": WORKFLOW_ID,
    "title": "Deploy a service (demo)",
    "description": "trigger → condition → a KAFKA node completed by an external system",
    "nodes": [
        {"identifier": "trigger", "title": "Deploy", "config": {
            "type": "SELF_SERVE_TRIGGER",
            "userInputs": {
                "properties": {
                    "service": {"type": "string", "title": "Service"},
                    "environment": {"type": "string", "enum": ["staging", "production"]},
                },
                "required": ["service", "environment"],
            },
        }},
        {"identifier": "is_production", "title": "Production?", "config": {
            "type": "CONDITION",
            "outlets": [{"identifier": "yes", "title": "Production",
                         "expression": '.outputs.trigger.environment == "production"'}],
        }},
        {"identifier": "deploy", "title": "Deploy", "config": {
            "type": "KAFKA",
            "payload": {"service": "{{ .outputs.trigger.service }}",
                        "environment": "{{ .outputs.trigger.environment }}",
                        "requestedBy": "{{ .workflowRun.trigger.by }}"},
        }},
    ],
    "connections": [
        {"sourceIdentifier": "trigger", "targetIdentifier": "is_production"},
        {"sourceIdentifier": "is_production", "targetIdentifier": "deploy",
         "sourceOutletIdentifier": "yes"},
    ],
}  # fmt: skip


class DemoError(Exception):
    """The demo could not complete; the message says where it stopped."""


def _check(response: httpx.Response, *expected: int) -> dict[str, Any]:
    if response.status_code not in expected:
        raise DemoError(f"{response.request.method} {response.request.url.path} answered "
                        f"{response.status_code}: {response.text}")  # fmt: skip
    body: dict[str, Any] = response.json()
    return body


def _credentials(settings: Settings) -> tuple[str, str]:
    saved = settings.home / "dev-credentials.json"
    if not saved.exists():
        raise DemoError(f"no dev credentials at {saved}: run `switchyard stack up` first")
    by_id = {c["client_id"]: c["client_secret"] for c in json.loads(saved.read_text())}
    return "dev-machine", by_id["dev-machine"]


def _wait_for(client: httpx.Client, run_id: str, check: Any, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        run = _check(client.get(f"/v1/workflows/runs/{run_id}"), 200)["workflowRun"]
        if check(run):
            return run
        if time.monotonic() > deadline:
            raise DemoError(f"run {run_id} did not get there in {within:.0f} s: {run}")
        time.sleep(0.1)


def run_demo(settings: Settings, say: Any = print) -> dict[str, Any]:
    client_id, secret = _credentials(settings)
    base = f"http://{settings.bridge_host}:{settings.bridge_port}"
    with httpx.Client(base_url=base, timeout=30.0) as client:
        token = _check(
            client.post(
                "/v1/auth/access_token", json={"clientId": client_id, "clientSecret": secret}
            ),
            200,
        )
        client.headers["Authorization"] = f"Bearer {token['accessToken']}"
        created = client.post("/v1/workflows", json=WORKFLOW)
        if created.status_code == 409:
            _check(client.put(f"/v1/workflows/{WORKFLOW_ID}", json=WORKFLOW), 200)
        else:
            _check(created, 201)
        say(f"workflow {WORKFLOW_ID} defined")
        inputs = {"service": "checkout", "environment": "production"}
        run = _check(
            client.post(f"/v1/workflows/{WORKFLOW_ID}/runs", json={"inputs": inputs}), 201, 202
        )["workflowRun"]
        run_id = run["identifier"]
        say(f"triggered {run_id}")

        def deploy_waiting(r: dict[str, Any]) -> bool:
            return any(
                nr["node"]["identifier"] == "deploy" and nr["status"] == "IN_PROGRESS"
                for nr in r["nodeRuns"]
            )

        run = _wait_for(client, run_id, deploy_waiting)
        deploy = next(nr for nr in run["nodeRuns"] if nr["node"]["identifier"] == "deploy")
        say(f"node run {deploy['identifier']} waits for an external system; completing it")
        path = f"/v1/workflows/runs/{run_id}/nodes/{deploy['identifier']}"
        _check(
            client.patch(
                path,
                json={
                    "status": "IN_PROGRESS",
                    "logs": [{"logLevel": "INFO", "log": "Deployment started"}],
                },
            ),
            200,
        )
        _check(client.patch(path, json={
            "status": "COMPLETED", "result": "SUCCESS",
            "output": {"deploymentUrl": "https://checkout.example.com", "version": "1.0.0"},
            "logs": [{"logLevel": "INFO", "log": "Deployment completed"}],
        }), 200)  # fmt: skip
        final: dict[str, Any] = _wait_for(client, run_id, lambda r: r["status"] == "COMPLETED")
        say(json.dumps(final, indent=2))
        say(f"run {run_id}: {final['status']} / {final['result']}")
        return final
