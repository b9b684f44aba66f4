"""What every example needs: where the API is, credentials, defining a workflow, waiting.

Credentials come from SWITCHYARD_CLIENT_ID / SWITCHYARD_CLIENT_SECRET, else from the
dev machine credential that `switchyard stack up` wrote to <home>/dev-credentials.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from switchyard.consumers import ApiError, RunsClient
from switchyard.schemas import WorkflowRun
from switchyard.schemas.settings import Settings


def api_client(settings: Settings) -> RunsClient:
    url = os.environ.get("SWITCHYARD_API_URL") or (
        f"http://{settings.bridge_host}:{settings.bridge_port}"
    )
    client_id = os.environ.get("SWITCHYARD_CLIENT_ID")
    secret = os.environ.get("SWITCHYARD_CLIENT_SECRET")
    if not client_id or not secret:
        saved = settings.home / "dev-credentials.json"
        if not saved.exists():
            raise SystemExit(
                "set SWITCHYARD_CLIENT_ID and SWITCHYARD_CLIENT_SECRET, or run "
                "`switchyard stack up` (it writes dev credentials) with the same SWITCHYARD_HOME"
            )
        machine = next(c for c in json.loads(saved.read_text()) if c["client_id"] == "dev-machine")
        client_id, secret = machine["client_id"], machine["client_secret"]
    return RunsClient(url, client_id, secret)


async def define(client: RunsClient, definition: dict[str, Any]) -> None:
    """Create the workflow, or replace it with this definition when it exists."""
    try:
        await client.request("POST", "/v1/workflows", json=definition)
    except ApiError as error:
        if error.status_code != 409:
            raise
        await client.request("PUT", f"/v1/workflows/{definition['identifier']}", json=definition)


async def wait_until_completed(
    client: RunsClient, run_id: str, within: float = 30.0
) -> WorkflowRun:
    """The run once it is COMPLETED (read through the API, as a dashboard would)."""
    deadline = time.monotonic() + within
    while True:
        try:
            run = await client.get_run(run_id)
            if run.status == "COMPLETED":
                return run
        except ApiError as error:
            if error.status_code != 404:  # a run produced to Kafka appears a moment later
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} did not complete within {within} s")
        await asyncio.sleep(0.05)
