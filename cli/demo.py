"""``switchyard demo``: one sample workflow end to end through the runs API.

What a platform team's first hour looks like: define a workflow, trigger a run,
play the external system that completes its KAFKA node (the seed's "External
processing" example, with a PATCH), and show the finished run: a line per node run
(``--json``: the run's JSON as the API returns it), then where to look next: the run's
page in the web UI and the CLI commands, logged in with a dev credential.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
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


def _saved(settings: Settings) -> dict[str, str]:
    saved = settings.home / "dev-credentials.json"
    if not saved.exists():
        raise DemoError(f"no dev credentials at {saved}: run `switchyard stack up` first")
    return {c["client_id"]: c["client_secret"] for c in json.loads(saved.read_text())}


def _credentials(settings: Settings) -> tuple[str, str]:
    return "dev-machine", _saved(settings)["dev-machine"]


def _summary(run: dict[str, Any]) -> list[str]:
    lines = []
    for node_run in run["nodeRuns"]:
        state = f"{node_run['status']} {node_run.get('result') or ''}".rstrip()
        line = f"  {node_run['node']['identifier']} ({node_run['nodeConfigType']}) {state}"
        if node_run.get("output"):
            line += f"  output {json.dumps(node_run['output'])}"
        lines.append(line)
    return lines


def _command() -> str:
    """How the user ran us: ``.venv/bin/switchyard`` from scripts/up, else ``switchyard``."""
    invoked = Path(sys.argv[0])
    if invoked.name != "switchyard":
        return "switchyard"
    try:
        return str(invoked.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(invoked)


def next_steps(settings: Settings, run_id: str) -> list[str]:
    """Where to look next: the run in the web UI, the CLI logged in as the dev Admin."""
    me = _command()
    base = f"http://{settings.bridge_host}:{settings.bridge_port}"
    secret = _saved(settings).get("dev-admin", "<dev-admin's clientSecret>")
    return [
        "next:",
        f"  web UI  {base}/ui/#/runs/{run_id}  (sign in as dev-admin, clientSecret above)",
        f"  CLI     {me} login --api-url {base} --client-id dev-admin --client-secret {secret}",
        f"          {me} runs list",
        f"          {me} runs watch {run_id}",
        f"          {me} runs trigger {WORKFLOW_ID} --input service=web "
        "--input environment=staging --wait",
        "          (every command: README, CLI)",
        f"  stop    {me} stack down",
    ]


def _wait_for(client: httpx.Client, run_id: str, check: Any, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        run = _check(client.get(f"/v1/workflows/runs/{run_id}"), 200)["workflowRun"]
        if check(run):
            return run
        if time.monotonic() > deadline:
            raise DemoError(f"run {run_id} did not get there in {within:.0f} s: {run}")
        time.sleep(0.1)


def run_demo(settings: Settings, say: Any = print, as_json: bool = False) -> dict[str, Any]:
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
        if as_json:
            say(json.dumps(final, indent=2))
        else:
            for line in _summary(final):
                say(line)
        say(f"run {run_id}: {final['status']} / {final['result']}")
        return final
