"""Helpers of the bridge's tests: an API client per actor, sample workflows."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from switchyard.bridge.context import BridgeContext
from switchyard.engine.store import keys

SECRET = "test-client-secret"
TOKEN_SECRET = "test-token-secret-0123456789abcdef"


class Api:
    """The bridge app behind httpx, with a token per actor (admin, member, other, machine)."""

    def __init__(self, client: httpx.AsyncClient, app: FastAPI) -> None:
        self.client = client
        self.app = app
        self._tokens: dict[str, str] = {}

    @property
    def ctx(self) -> BridgeContext:
        ctx = self.app.state.bridge
        assert isinstance(ctx, BridgeContext)
        return ctx

    def token(self, who: str) -> str:
        if who not in self._tokens:
            actor = self.ctx.credentials.actor(who)
            assert actor is not None, who
            self._tokens[who] = self.ctx.signer.issue(actor)
        return self._tokens[who]

    async def call(
        self, method: str, path: str, who: str | None = "admin", **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.token(who)}"
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def define(self, definition: dict[str, Any]) -> dict[str, Any]:
        response = await self.call("POST", "/v1/workflows", json=definition)
        assert response.status_code == 201, response.text
        workflow: dict[str, Any] = response.json()["workflow"]
        return workflow

    async def trigger(self, wf: str, inputs: dict[str, Any], who: str = "admin") -> dict[str, Any]:
        response = await self.call("POST", f"/v1/workflows/{wf}/runs", who, json={"inputs": inputs})
        assert response.status_code == 201, response.text
        run: dict[str, Any] = response.json()["workflowRun"]
        return run

    async def run(self, run_id: str, who: str = "admin") -> dict[str, Any]:
        response = await self.call("GET", f"/v1/workflows/runs/{run_id}", who)
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()["workflowRun"]
        return run


def trigger_node(permissions: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "type": "SELF_SERVE_TRIGGER",
        "userInputs": {
            "properties": {
                "name": {"type": "string", "minLength": 2},
                "env": {"type": "string", "enum": ["staging", "production"]},
                "count": {"type": "number", "minimum": 1, "maximum": 5},
            },
            "required": ["name"],
        },
    }
    if permissions is not None:
        config["permissions"] = permissions
    return {"identifier": "trigger", "title": "Start", "config": config}


def kafka_workflow(
    identifier: str, *, permissions: dict[str, Any] | None = None, anyone: bool = True
) -> dict[str, Any]:
    """trigger → work (a KAFKA node: waits for an external completion)."""
    return {
        "identifier": identifier,
        "title": "Bridge test",
        "allowAnyoneToViewRuns": anyone,
        "nodes": [
            trigger_node(permissions),
            {"identifier": "work", "title": "Work",
             "config": {"type": "KAFKA", "payload": {"name": "{{ .outputs.trigger.name }}"}}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
    }  # fmt: skip


REF = "{{ .outputs.trigger.name }}"


def integration_workflow(identifier: str, installation: str) -> dict[str, Any]:
    """trigger → act (an INTEGRATION_ACTION node, claimed by ``installation``)."""
    return {
        "identifier": identifier,
        "nodes": [
            trigger_node(),
            {"identifier": "act", "title": "Act",
             "config": {"type": "INTEGRATION_ACTION", "installationId": installation,
                        "integrationProvider": "github", "integrationInvocationType": "WORKFLOW",
                        "integrationActionExecutionProperties": {"ref": REF}}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "act"}],
    }  # fmt: skip


def new_installation() -> str:
    return f"inst-{uuid.uuid4().hex[:8]}"


def node_run(run: dict[str, Any], node: str) -> dict[str, Any]:
    found: dict[str, Any] = next(nr for nr in run["nodeRuns"] if nr["node"]["identifier"] == node)
    return found


async def runs_of(api: Api, workflow: str) -> list[str]:
    """The workflow's runs in every partition's index, by ``createdAt``."""
    found: list[tuple[float, str]] = []
    for tag in api.ctx.runs.tags():
        members: Any = await api.ctx.redis.zrange(keys.runs_of_workflow(workflow, tag), 0, -1,
                                                  withscores=True)  # fmt: skip
        found += [(float(score), r.decode() if isinstance(r, bytes) else str(r))
                  for r, score in members]  # fmt: skip
    return [run_id for _, run_id in sorted(found)]
